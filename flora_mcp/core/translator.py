"""Anything -> ToolResult: the one place that decides what the agent is told and what it should do next.

A failure is classified once, by what is known about the money; the call's `CallPhase` records that as the call goes,
so an exception raised anywhere (FLORA's or a bug of ours) is judged by the same rule:

    what is known                                        status    error_code                          run_id
    flora-mcp refused the call (arguments, caps, tool)   invalid   invalid_arguments, cost_cap_...     -
    the person said no to its price (core/confirm.py)    declined  confirmation_declined|_cancelled    -
    it needs a yes and nobody can be asked               invalid   confirmation_unavailable            -
    nothing was sent, and flora-mcp failed               invalid   internal_error                      -
    nothing was sent: FLORA unreachable or said no       error     FLORA's (connection_error, ...)     -
    an input file was sent but is no usable asset        error     upload_failed                       -
    a create left and no answer says what it did         error     outcome_unknown                     -
    a create left; FLORA has a run for it, not found     error     already_submitted                   -
    a run exists (created or asked for), then a failure  error     FLORA's, or internal_error          always
    the run's own state                                  completed, failed, running, pending, timed_out
    an MCP task cancelled, or cut by a restart           error     task_cancelled, task_interrupted    if known

Every surface (MCP handlers, MCP tasks, `Toolkit.call`, the LLM-API adapters) ends in these functions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from flora_mcp.api.errors import (
    APIConnectionError,
    APIError,
    APIResponseError,
    APIStatusError,
    FloraError,
    IdempotencyError,
    InvalidURLError,
    UploadError,
)
from flora_mcp.api.models import Run, Technique
from flora_mcp.core.results import RESULT_STATUSES, FieldError, OutputFile, TechniqueRef, ToolResult, format_usd
from flora_mcp.core.tool_names import GET_RUN, LIST_RUNS

__all__ = [
    "CONFIRMATION_REQUIRED",
    "CallPhase",
    "cancelled_task",
    "combined",
    "confirmation_required",
    "confirmation_unavailable",
    "cost_refusal",
    "declined",
    "from_failure",
    "from_run",
    "informational",
    "interrupted_task",
    "refusal",
    "technique_ref",
]

log = logging.getLogger("flora_mcp.core.translator")


class CallPhase:
    """How far one tool call has gone toward FLORA's money: create requests in flight, and the run ids it knows.

    The run lifecycle marks it (`sending`, then `created` or `nothing_created`; `run_known` for a run asked for by
    id); `from_failure` reads it. A call of several runs gives each run a phase of its own (`for_run`), whose marks
    count in the call's too.
    """

    def __init__(self, parent: CallPhase | None = None) -> None:
        self._parent = parent
        self.in_flight = 0
        self.run_ids: list[str] = []

    def for_run(self) -> CallPhase:
        """The phase of one run of this call."""
        return CallPhase(self)

    def sending(self) -> None:
        """A create request is about to leave: from here on FLORA may make a (paid) run."""
        self.in_flight += 1
        if self._parent is not None:
            self._parent.sending()

    def created(self, run_id: str) -> None:
        """FLORA answered the create with its run."""
        self.in_flight = max(self.in_flight - 1, 0)
        self.run_ids.append(run_id)
        if self._parent is not None:
            self._parent.created(run_id)

    def nothing_created(self) -> None:
        """The create is known to have made nothing: FLORA refused it, or it never reached FLORA."""
        self.in_flight = max(self.in_flight - 1, 0)
        if self._parent is not None:
            self._parent.nothing_created()

    def run_known(self, run_id: str) -> None:
        """The call is about this existing run (flora_get_run)."""
        if run_id not in self.run_ids:
            self.run_ids.append(run_id)
        if self._parent is not None:
            self._parent.run_known(run_id)


def technique_ref(technique: Technique | None) -> TechniqueRef | None:
    """The short reference to a technique that results carry (id, slug, name), or None."""
    if technique is None:
        return None
    return TechniqueRef(technique_id=technique.technique_id, slug=technique.slug, name=technique.name or
                        technique.slug or technique.technique_id)


# Runs ----------------------------------------------------------------------------------------------------------


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


def combined(tool: str, results: Sequence[ToolResult]) -> ToolResult:
    """One result for the runs of a multiple-value call: the worst status, every output, the summed cost."""
    statuses = {r.status for r in results}
    costs = [r.charged_cost for r in results if r.charged_cost is not None]
    pending = [r.run_id for r in results if r.status in ("running", "pending") and r.run_id]
    return ToolResult(
        tool=tool, status=next(s for s in RESULT_STATUSES if s in statuses),  # the worst
        technique=results[0].technique,
        outputs=[OutputFile(**o.model_dump()) for r in results for o in r.outputs],
        charged_cost=round(sum(costs), 6) if costs else None,
        runs=list(results),
        error_code=next((r.error_code for r in results if r.error_code), None),
        error_message=next((r.error_message for r in results if r.error_message), None),
        next_step=(f"{len(pending)} run(s) still going: call {GET_RUN} with each run_id: {', '.join(pending)}."
                   if pending else None),
    )


# Refusals: nothing was sent --------------------------------------------------------------------------------------


def refusal(tool: str, technique: Technique | None, message: str, fields: list[FieldError] | None = None,
            *, code: str = "invalid_arguments", next_step: str | None = None) -> ToolResult:
    """A call flora-mcp refused before anything was sent to FLORA."""
    return ToolResult(
        tool=tool, status="invalid", technique=technique_ref(technique), error_code=code, error_message=message,
        error_fields=fields or [],
        next_step=next_step or "Fix the arguments named above and call again; nothing was submitted or charged.",
    )


def cost_refusal(tool: str, technique: Technique, *, price: float | None, cap_name: str, cap: float,
                 remaining: float | None) -> ToolResult:
    """A call refused because of a cost cap: the price, the cap and what remains, before any request."""
    left = f" {format_usd(remaining)} of the session budget remains." if remaining is not None else ""
    if price is None:
        message = f"The price of {technique.name} is unknown, and {cap_name} is set to {format_usd(cap)}."
    else:
        message = f"This call costs {format_usd(price)}, above {cap_name} of {format_usd(cap)}."
    return refusal(tool, technique, message + left, code="cost_cap_exceeded",
                   next_step="Nothing was submitted. Ask the user before raising the cap or choose a cheaper call.")


# The person's decision: nothing was sent ---------------------------------------------------------------------------


def declined(tool: str, technique: Technique, answer: str, price: float | None) -> ToolResult:
    """The person declined (or cancelled) the confirmation of a call: not an error, and nothing was spent."""
    cost = format_usd(price) if price is not None else "its unstated price"
    said = (f"dismissed the confirmation of {technique.name} ({cost}) without accepting" if answer == "cancel"
            else f"declined to spend {cost} on {technique.name}")
    return ToolResult(
        tool=tool, status="declined", technique=technique_ref(technique), charged_cost=0.0,
        error_code="confirmation_cancelled" if answer == "cancel" else "confirmation_declined",
        error_message=f"The person {said}. Nothing was sent to FLORA and nothing was charged.",
        next_step="Do not call it again unless the person asks for it; ask them what they would like instead.")


def confirmation_unavailable(tool: str, technique: Technique, price: float | None, *, threshold: float) -> ToolResult:
    """A call that needs the person's yes, from a caller that cannot ask anyone: refused, never run silently."""
    cost = f"costs {format_usd(price)}" if price is not None else "has no stated price"
    return refusal(
        tool, technique, f"This call {cost}, above FLORA_CONFIRM_ABOVE ({format_usd(threshold)}), so the person must "
        "confirm it, and this client cannot ask them.", code="confirmation_unavailable",
        next_step=("Nothing was submitted. To run it, use a client that can ask the person (an MCP client with form "
                   "elicitation, or `flora-mcp run` at a terminal), or have them raise FLORA_CONFIRM_ABOVE above "
                   "this price or unset it."))


CONFIRMATION_REQUIRED = "confirmation_required"


def confirmation_required(tool: str, technique: Technique, message: str) -> ToolResult:
    """A call waiting for the person's answer, to be asked in a retried request: nothing was sent yet."""
    return refusal(tool, technique, message, code=CONFIRMATION_REQUIRED,
                   next_step="Nothing was submitted. The call runs once the person confirms it.")


# Failures: classified by the phase -------------------------------------------------------------------------------

_NEXT_STEP_BY_CODE = {
    "input_validation_error": "Fix the inputs FLORA names and call again; nothing was charged.",
    "invalid_json": "flora-mcp sent a request FLORA could not read; report this as a bug.",
    "unauthorized": "FLORA did not accept the API key: check FLORA_API_KEY (a key looks like sk_live_...).",
    "invalid_api_key": "FLORA did not accept the API key: check FLORA_API_KEY (a key looks like sk_live_...).",
    "insufficient_credits": "Top up the FLORA account's credits, then call again; nothing was charged.",
    "forbidden": "This key may not do this: check its access and FLORA_WORKSPACE_ID.",
    "not_found": "FLORA does not know this technique or run (any more); list the tools again.",
    "unknown_error": "FLORA failed on its side; try again in a minute.",
    "workspace_required": "Nothing was submitted or charged. Set FLORA_WORKSPACE_ID to one of the workspaces named, "
                          "then call again.",
}
_INTERNAL = "flora-mcp failed unexpectedly; the details are in its log."


def from_failure(tool: str, exc: BaseException, phase: CallPhase | None,
                 technique: Technique | None = None) -> ToolResult:
    """Any failure of a call, FLORA's or flora-mcp's own, as the result the phase it happened in calls for.

    `phase=None`: the failure came from an executor that cannot say how far it got (an adapter's foreign caller).
    """
    api = _api_error(exc)
    if api is None and not isinstance(exc, FloraError):
        log.error("tool %s raised unexpectedly", tool, exc_info=exc)
    result = ToolResult(tool=tool, status="error", technique=technique_ref(technique))
    if isinstance(exc, FloraError):
        result.error_code, result.error_message = (api or exc).code, exc.message
    else:
        result.error_code, result.error_message = "internal_error", _INTERNAL
    if api is not None:
        result.request_id = api.request_id
        if isinstance(api, APIStatusError):
            result.error_fields = [FieldError(field=f["field"], message=f["message"]) for f in api.fields]
    if phase is None:
        result.error_code, result.error_message = "tool_error", f"{type(exc).__name__}: {exc}"
        result.next_step = (f"The tool failed; it may have started a paid run first. Check {LIST_RUNS} before "
                            "calling it again.")
    elif phase.run_ids:
        _run_exists(result, phase, api)
    elif phase.in_flight and (api is None or api.outcome_unknown or isinstance(api, IdempotencyError)):
        _maybe_created(result, api, exc)
    elif api is not None:
        result.next_step = _next_step(api)
    elif isinstance(exc, UploadError) and exc.sent:
        result.next_step = ("The file was sent to FLORA but did not become a usable asset; no run was started and "
                            "nothing was charged. Check the file, or give an https URL instead.")
    else:
        result.status = "invalid"
        result.next_step = _NEXT_STEP_BY_CODE.get(
            result.error_code or "", "Nothing was submitted or charged. Try again; report the problem if it persists.")
    return result


def _run_exists(result: ToolResult, phase: CallPhase, api: APIError | None) -> None:
    ids = phase.run_ids
    if len(ids) == 1:
        result.run_id = ids[0]
    else:
        result.runs = [ToolResult(tool=result.tool, status="error", run_id=run_id, error_code=result.error_code)
                       for run_id in ids]
    named = ", ".join(f'"{run_id}"' for run_id in ids)
    if api is None:
        result.error_message = f"flora-mcp failed unexpectedly with run {named} under way; the details are in its log."
    if isinstance(api, APIStatusError) and api.code == "not_found":
        result.next_step = f"FLORA does not know run {named} (any more): check the run_id."
        return
    result.next_step = (f"The run exists and may be charged: call {GET_RUN} with run_id {named} to check on it "
                        "instead of calling the tool again.")
    if phase.in_flight:
        result.next_step += (f" {phase.in_flight} more run request(s) may have reached FLORA: see {LIST_RUNS} or "
                             "the FLORA app.")


def _maybe_created(result: ToolResult, api: APIError | None, exc: BaseException) -> None:
    if isinstance(api, IdempotencyError):
        result.error_code = "already_submitted"
        result.error_message = ("FLORA already has a run for this call (it answered "
                                f"{api.code}), and its run id could not be recovered.")
        result.next_step = (f"Do not call the tool again: the run was submitted and is charged. Find it with "
                            f"{LIST_RUNS} or in the FLORA app, then use {GET_RUN} with its run_id.")
        return
    detail = api.message if api is not None else f"flora-mcp failed: {type(exc).__name__}"
    result.error_code = "outcome_unknown"
    result.error_message = f"The run request may have reached FLORA, but no answer came back ({detail})."
    result.next_step = ("Do not call the tool again yet: a run may already be going, and a new call is charged "
                        f"again. Call {LIST_RUNS} to see it, or check the FLORA app.")


def _next_step(api: APIError) -> str:
    if isinstance(api, APIStatusError):
        if api.code == "rate_limited":
            wait = f"{api.retry_after:.0f} s" if api.retry_after is not None else "a minute"
            return f"FLORA is rate-limiting this key; retry after {wait}."
        return _NEXT_STEP_BY_CODE.get(api.code, _NEXT_STEP_BY_CODE["unknown_error"])
    if isinstance(api, InvalidURLError):
        return ("Nothing was sent: the URL to request is not valid. Check FLORA_BASE_URL, and the run_id or "
                "technique given; report it if FLORA's own answer named the URL.")
    if isinstance(api, APIConnectionError):
        return "FLORA could not be reached; check the network and FLORA_BASE_URL, then try again."
    if isinstance(api, APIResponseError):
        return "FLORA's answer could not be read; try again, and report the request-id if it persists."
    return _NEXT_STEP_BY_CODE["unknown_error"]


def _api_error(exc: BaseException) -> APIError | None:
    """The FLORA failure behind `exc`: itself, or the one it was raised from (the catalog could not be loaded)."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, FloraError) and isinstance(exc.__cause__, APIError):
        return exc.__cause__
    return None


# Everything else ---------------------------------------------------------------------------------------------


def informational(tool: str, data: dict[str, Any], *, session_spend: float | None = None) -> ToolResult:
    """The answer of a tool that reads rather than runs (spend, list of runs, search)."""
    return ToolResult(tool=tool, status="completed", data=data, session_spend=session_spend)


def cancelled_task(tool: str, *, submitted: bool = True) -> ToolResult:
    """An MCP task cancelled by its client: flora-mcp stopped waiting, the run (if any) goes on.

    `submitted=False`: it was cancelled while the person was asked to confirm, before anything was sent.
    """
    if not submitted:
        return ToolResult(tool=tool, status="error", error_code="task_cancelled", charged_cost=0.0,
                          error_message="The task was cancelled while waiting for the person's confirmation: nothing "
                                        "was sent to FLORA and nothing was charged.",
                          next_step="Call the tool again if the person still wants it.")
    return ToolResult(
        tool=tool, status="error", error_code="task_cancelled",
        error_message="The task was cancelled: flora-mcp stopped waiting for the run.",
        next_step=(f"A run that was submitted goes on and is charged: find it with {LIST_RUNS}, then call "
                   f"{GET_RUN} with its run_id. Do not call the tool again for the same work."))


def interrupted_task(tool: str, *, submitted: bool) -> ToolResult:
    """An MCP task whose server restarted before it ended, and that has no run to follow again."""
    if not submitted:
        return ToolResult(tool=tool, status="error", error_code="task_interrupted", charged_cost=0.0,
                          error_message="flora-mcp restarted while waiting for the person's confirmation: nothing "
                                        "was sent to FLORA and nothing was charged.",
                          next_step="Call the tool again to be asked again.")
    return ToolResult(
        tool=tool, status="error", error_code="task_interrupted",
        error_message="flora-mcp restarted before it knew this task's FLORA run, which may exist and be charged.",
        next_step=f"Look for the run with {LIST_RUNS} before calling the tool again; then call {GET_RUN} with it.")
