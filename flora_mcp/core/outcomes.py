"""Runs and errors -> ToolResult: the one place that decides what the agent is told and what it should do next."""

from __future__ import annotations

from flora_mcp.api.errors import APIConnectionError, APIError, APIResponseError, APIStatusError
from flora_mcp.api.models import Run, Technique
from flora_mcp.core.catalog import format_usd
from flora_mcp.core.results import FieldError, OutputFile, TechniqueRef, ToolResult

__all__ = ["cost_refusal", "from_error", "from_run", "invalid", "technique_ref"]

GET_RUN = "flora_get_run"


def technique_ref(technique: Technique | None) -> TechniqueRef | None:
    """The short reference to a technique that results carry (id, slug, name), or None."""
    if technique is None:
        return None
    return TechniqueRef(technique_id=technique.technique_id, slug=technique.slug, name=technique.name or
                        technique.slug or technique.technique_id)


def from_run(tool: str, run: Run, technique: Technique | None, *, timed_out: bool = False) -> ToolResult:
    """The result of a run in whatever state it is."""
    status = "timed_out" if timed_out and not run.is_terminal else run.status
    result = ToolResult(
        tool=tool,
        status=status,
        run_id=run.run_id,
        technique=technique_ref(technique),
        outputs=[OutputFile(output_id=o.output_id or f"output_{i + 1}", type=o.type, url=o.url)
                 for i, o in enumerate(run.outputs)],
        charged_cost=run.charged_cost,
        progress=100.0 if run.status == "completed" else run.progress,
    )
    if status == "failed":
        result.error_code = run.error_code or "run_failed"
        result.error_message = run.error_message or "FLORA reports the run failed without saying why."
        result.next_step = "Check the inputs and call the tool again if you want to retry (a new run is charged again)."
    elif status in ("pending", "running"):
        result.next_step = (f'The run goes on. Call {GET_RUN} with run_id "{run.run_id}" to wait for its outputs; '
                            f"do not call {tool} again, that would start and pay for a second run.")
    elif status == "timed_out":
        result.next_step = (f'flora-mcp stopped waiting (FLORA_RUN_TIMEOUT). Call {GET_RUN} with run_id "{run.run_id}" '
                            "later to see whether it finished.")
    return result


def invalid(tool: str, technique: Technique | None, message: str, fields: list[FieldError] | None = None,
            *, code: str = "invalid_arguments", next_step: str | None = None) -> ToolResult:
    """A call refused before anything was sent to FLORA."""
    return ToolResult(
        tool=tool, status="invalid", technique=technique_ref(technique), error_code=code, error_message=message,
        error_fields=fields or [],
        next_step=next_step or "Fix the arguments named above and call again; nothing was submitted or charged.",
    )


_NEXT_STEP_BY_CODE = {
    "input_validation_error": "Fix the inputs FLORA names and call again; nothing was charged.",
    "invalid_json": "flora-mcp sent a request FLORA could not read; report this as a bug.",
    "unauthorized": "FLORA did not accept the API key: check FLORA_API_KEY (a key looks like sk_live_...).",
    "invalid_api_key": "FLORA did not accept the API key: check FLORA_API_KEY (a key looks like sk_live_...).",
    "insufficient_credits": "Top up the FLORA account's credits, then call again; nothing was charged.",
    "forbidden": "This key may not do this: check its access and FLORA_WORKSPACE_ID.",
    "not_found": "FLORA does not know this technique or run (any more); list the tools again.",
    "unknown_error": "FLORA failed on its side; try again in a minute.",
}


def from_error(
    tool: str,
    exc: APIError,
    technique: Technique | None = None,
    *,
    run_id: str | None = None,
    submitted: bool = False,
) -> ToolResult:
    """An API failure as a result. `submitted`: the failed request was a create whose outcome is unknown."""
    result = ToolResult(
        tool=tool, status="error", technique=technique_ref(technique), run_id=run_id,
        error_code=exc.code, error_message=exc.message, request_id=exc.request_id,
    )
    if isinstance(exc, APIStatusError):
        result.error_fields = [FieldError(field=f["field"], message=f["message"]) for f in exc.fields]
        if exc.code == "rate_limited":
            wait = f"{exc.retry_after:.0f} s" if exc.retry_after is not None else "a minute"
            result.next_step = f"FLORA is rate-limiting this key; retry after {wait}."
        else:
            result.next_step = _NEXT_STEP_BY_CODE.get(exc.code, _NEXT_STEP_BY_CODE["unknown_error"])
    elif isinstance(exc, APIConnectionError):
        result.next_step = "FLORA could not be reached; check the network and FLORA_BASE_URL, then try again."
    elif isinstance(exc, APIResponseError):
        result.next_step = "FLORA's answer could not be read; try again, and report the request-id if it persists."
    if run_id:
        result.next_step = (f'The run exists; call {GET_RUN} with run_id "{run_id}" to check on it instead of '
                            "starting a new one.")
    elif submitted:
        result.error_code = "outcome_unknown"
        result.error_message = (f"The run request may have reached FLORA, but no answer came back ({exc.message}).")
        result.next_step = ("Do not call the tool again yet: a run may already be going, and a new call is charged "
                            "again. Call flora_list_runs to see it, or check the FLORA app.")
    return result


def cost_refusal(tool: str, technique: Technique, *, price: float | None, cap_name: str, cap: float,
                 remaining: float | None) -> ToolResult:
    """A call refused because of a cost cap: the price, the cap and what remains, before any request."""
    left = f" {format_usd(remaining)} of the session budget remains." if remaining is not None else ""
    if price is None:
        message = f"The price of {technique.name} is unknown, and {cap_name} is set to {format_usd(cap)}."
    else:
        message = f"This call costs {format_usd(price)}, above {cap_name} of {format_usd(cap)}."
    return invalid(tool, technique, message + left, code="cost_cap_exceeded",
                   next_step="Nothing was submitted. Ask the user before raising the cap or choose a cheaper call.")
