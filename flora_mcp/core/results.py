"""The result of a tool call, shared by the MCP server and the library API.

`ToolResult` is what `Toolkit.call` returns (core/translator.py makes every one); `to_call_tool_result` turns it into
the MCP `CallToolResult` (text for the model, `structuredContent` matching `OUTPUT_SCHEMA`, `isError`). Everything the
agent needs is in both: status, run id, output URLs, cost, and the next step. `OUTPUT_SCHEMA` is derived from the model.

Every form of a result that leaves the process (`summary`, `structured`, `redacted`, `to_call_tool_result`) passes
the log redaction (flora_mcp/logs.py): an error message of FLORA's that echoes the key never carries it further.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from flora_mcp.core.tool_names import GET_RUN, LIST_RUNS, SEARCH, SPEND
from flora_mcp.logs import json_may_hide_secrets, redact, redact_value

if TYPE_CHECKING:
    import mcp.types

__all__ = ["ERROR_STATUSES", "OUTPUT_SCHEMA", "RESULT_STATUSES", "FieldError", "InputUpload", "OutputFile",
           "ResultStatus", "TechniqueRef", "ToolResult", "format_usd"]

ResultStatus = Literal["invalid", "declined", "error", "failed", "timed_out", "running", "pending", "completed"]
"""A result's status, worst first (a call of several runs takes its worst one's). FLORA's four run statuses, and:
`invalid`: refused before anything reached FLORA; `declined`: the person said no to the call's price, nothing was
sent (not an error); `error`: FLORA or the network answered with an error, or the call failed with a run's outcome
unknown; `timed_out`: FLORA_RUN_TIMEOUT passed. `running`/`pending`: the call stopped waiting, the run goes on."""
RESULT_STATUSES: tuple[ResultStatus, ...] = get_args(ResultStatus)
ERROR_STATUSES: frozenset[ResultStatus] = frozenset({"invalid", "error", "failed"})
"""The statuses of a call that failed: MCP's `isError`."""
# Left out of `structuredContent` when empty, so that a plain result stays short.
_OMITTED_WHEN_EMPTY = ("error_fields", "runs", "uploads")


def format_usd(amount: float | None) -> str:
    """`$0.05`, `$0.005`, `$1.20`; 'an unknown amount' when FLORA did not say."""
    if amount is None:
        return "an unknown amount"
    text = f"{amount:.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"

class OutputFile(BaseModel):
    """One output of a run."""

    output_id: str
    type: str
    url: str
    path: str | None = None
    """Where the output was saved on this machine (FLORA_OUTPUT_DIR)."""


class InputUpload(BaseModel):
    """A local file (or data: value) a call uploaded to FLORA as an input: what left the machine."""

    input: str
    source: str
    """The file's path, or `a data: URL`."""
    size_bytes: int
    content_type: str
    asset_id: str
    url: str
    """The asset's URL, which the run was given instead of the file."""
    reused: bool = False
    """The same bytes were uploaded before: nothing was sent this time."""


class TechniqueRef(BaseModel):
    """Which technique a result belongs to."""

    technique_id: str
    slug: str | None = None
    name: str


class FieldError(BaseModel):
    """One bad argument, as FLORA or our own validation names it."""

    field: str
    message: str


class ToolResult(BaseModel):
    """What one tool call produced, for the MCP server and for library users alike.

    A field's `description` goes into `OUTPUT_SCHEMA`, which every technique tool carries in tools/list: only the few
    an agent needs; the rest are said in attribute docstrings, for library readers.
    """

    model_config = ConfigDict(extra="forbid")

    tool: str
    """The tool that was called."""
    status: ResultStatus = Field(
        description=f"completed: outputs are ready. running/pending: call {GET_RUN} with run_id. "
                    "declined: nothing spent.")
    run_id: str | None = Field(default=None, description=f"FLORA run id; pass it to {GET_RUN}.")
    technique: TechniqueRef | None = None
    outputs: list[OutputFile] = Field(default_factory=list)
    charged_cost: float | None = Field(default=None, description="USD charged for this run.")
    progress: float | None = None
    """0-100."""
    error_code: str | None = None
    error_message: str | None = None
    error_fields: list[FieldError] = Field(default_factory=list)
    request_id: str | None = None
    """FLORA's request-id of the failed request, for its support."""
    next_step: str | None = None
    """What the agent should do now."""
    session_spend: float | None = None
    """USD this session has spent so far."""
    runs: list[ToolResult] = Field(default_factory=list)
    """Per-value results of a multiple-value call."""
    uploads: list[InputUpload] = Field(default_factory=list)
    """The local files this call uploaded as inputs (or found uploaded already)."""
    data: dict[str, Any] | None = None
    """Payload of the informational tools (flora_list_runs, flora_spend, search, describe)."""

    @property
    def is_error(self) -> bool:
        """Whether the call failed (failed, invalid or error): the MCP `isError` flag."""
        return self.status in ERROR_STATUSES

    def redacted(self) -> ToolResult:
        """This result with every string in it (nested ones included) passed through the log redaction; itself when
        none of them holds anything to hide."""
        try:
            clean = not json_may_hide_secrets(self.model_dump_json())
        except ValueError:  # `data` holding what JSON cannot write: string by string
            clean = False
        return self if clean else ToolResult.model_validate(redact_value(self.model_dump()))

    def structured(self) -> dict[str, Any]:
        """The `structuredContent` form: JSON-ready, redacted, empty and unset fields left out."""
        data: dict[str, Any] = redact_value(self.model_dump(mode="json", exclude_none=True, exclude={"tool"}))
        for name in _OMITTED_WHEN_EMPTY:
            if not data.get(name):
                data.pop(name, None)
        return data

    def summary(self) -> str:
        """A few lines for the model, redacted: what happened, every URL, the cost, what to do next."""
        return redact(self._summary())

    def _summary(self) -> str:
        name = self.technique.name if self.technique else self.tool
        lines: list[str] = []
        if self.data is not None:
            lines.extend(_data_lines(self.tool, self.data))
        elif self.status == "completed":
            lines.append(f"{name}: run {self.run_id} completed.")
        elif self.status in ("running", "pending"):
            pct = f" ({self.progress:.0f}% done)" if self.progress is not None else ""
            lines.append(f"{name}: run {self.run_id} is still {self.status}{pct}.")
        elif self.status == "timed_out":
            lines.append(f"{name}: stopped waiting for run {self.run_id}; it may still finish on FLORA.")
        elif self.status == "failed":
            lines.append(f"{name}: run {self.run_id} failed: {self.error_code}: {self.error_message}")
        elif self.status == "declined":
            lines.append(f"{name}: not run. {self.error_message}")
        else:
            lines.append(f"{name}: {self.error_code or 'error'}: {self.error_message or 'the call failed'}")
            if self.run_id:
                lines.append(f"Run id: {self.run_id}")
        for field in self.error_fields:
            lines.append(f"- {field.field}: {field.message}")
        for upload in self.uploads:
            how = "already uploaded as" if upload.reused else "uploaded as"
            lines.append(f"Input {upload.input}: {upload.source} ({upload.size_bytes} bytes) {how} {upload.url}")
        for out in self.outputs:
            lines.append(f"Output {out.output_id} ({out.type}): {out.url}")
            if out.path:
                lines.append(f"  saved as {out.path}")
        for sub in self.runs:
            lines.append(f"- {sub._summary()}")
        if self.charged_cost is not None:
            lines.append(f"Charged: {format_usd(self.charged_cost)}")
        if self.session_spend is not None:
            lines.append(f"Session spend so far: {format_usd(self.session_spend)}")
        if self.request_id:
            lines.append(f"FLORA request-id: {self.request_id}")
        if self.next_step:
            lines.append(f"Next: {self.next_step}")
        return "\n".join(lines)

    def to_call_tool_result(self, extra_content: list[Any] | None = None) -> mcp.types.CallToolResult:
        """The MCP form of this result."""
        import mcp.types as types

        content: list[Any] = [types.TextContent(type="text", text=self.summary())]
        content.extend(_redacted_block(block) for block in extra_content or [])
        return types.CallToolResult(content=content, structured_content=self.structured(), is_error=self.is_error)


def _redacted_block(block: Any) -> Any:
    """A content block with its text fields redacted; an image's data is left as is (base64 holds no `_`, so no key
    pattern, and replacing bytes in it would break the image)."""
    fields: dict[str, str] = {}
    for name in ("text", "uri", "name", "title", "description"):
        value = getattr(block, name, None)
        if isinstance(value, str) and (clean := redact(value)) != value:
            fields[name] = clean
    return block.model_copy(update=fields) if fields else block


# The text of the informational tools: what their `data` holds, compactly, for clients that show the model the text
# alone. ---------------------------------------------------------------------------------------------------------


def _data_lines(tool: str, data: dict[str, Any]) -> list[str]:
    if tool == LIST_RUNS:
        return _runs_lines(data)
    if tool == SPEND:
        return _spend_lines(data)
    if tool == SEARCH:
        found = data.get("techniques") or []
        shown = f" (the first {len(found)})" if len(found) < (data.get("count") or 0) else ""
        return [f"{tool}: {data.get('count', len(found))} technique(s) match{shown}.", *(f"- {t}" for t in found)]
    return [f"{tool}:", json.dumps(data, separators=(",", ":"), ensure_ascii=False)]


def _runs_lines(data: dict[str, Any]) -> list[str]:
    rows: list[dict[str, Any]] = data.get("runs") or []
    lines = [f"{LIST_RUNS}: {len(rows)} run(s), newest first." if rows else f"{LIST_RUNS}: no runs recorded."]
    for row in rows:
        name = row.get("technique_name") or row.get("technique_slug") or row.get("technique_id")
        facts = [str(row.get("status"))]
        if row.get("progress") is not None and row.get("status") in ("pending", "running"):
            facts.append(f"{row['progress']:.0f}% done")
        if row.get("charged_cost") is not None:
            facts.append(f"charged {format_usd(row['charged_cost'])}")
        elif row.get("run_cost") is not None:
            facts.append(f"price {format_usd(row['run_cost'])}")
        if row.get("created_at"):
            facts.append("created " + datetime.fromtimestamp(row["created_at"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
        run = f"run {row['run_id']}" if row.get("run_id") else f"no run id yet (call {row.get('idempotency_key')})"
        lines.append(f"- {run}: {name} via {row.get('tool')}, {', '.join(facts)}")
        for i, out in enumerate(row.get("outputs") or []):
            lines.append(f"  output {out.get('output_id') or f'output_{i + 1}'} ({out.get('type')}): {out.get('url')}")
        if row.get("error_code") or row.get("error_message"):
            lines.append(f"  error {row.get('error_code') or 'error'}: {row.get('error_message') or ''}".rstrip(": "))
    return lines


def _spend_lines(data: dict[str, Any]) -> list[str]:
    lines = [f"{SPEND}: this session {format_usd(data.get('session_spend'))}, held for runs under way "
             f"{format_usd(data.get('held'))}, all time {format_usd(data.get('total_charged'))}."]
    for row in data.get("by_technique") or []:
        name = row.get("technique_name") or row.get("technique_slug") or row.get("technique_id")
        lines.append(f"- {name}: {row.get('runs')} run(s), {format_usd(row.get('charged'))}")
    caps = data.get("caps") or {}
    lines.append("Caps: " + ", ".join(
        f"{name} {format_usd(value) if value is not None else 'none'}" for name, value in caps.items()) + "."
        if caps else "Caps: none.")
    return lines


def _output_schema() -> dict[str, Any]:
    """`ToolResult`'s JSON Schema as clients take it best: flat (no `$ref`), `X | None` as X (a None is left out of
    `structuredContent`, never sent as null), no titles or defaults, without `tool` (left out too), and required what
    `structured()` always sends. A nested result (`runs`) is an object, not expanded again."""
    schema = ToolResult.model_json_schema()
    defs: dict[str, Any] = schema.get("$defs", {})

    def flat(node: Any) -> Any:
        if isinstance(node, list):
            return [flat(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            # A nested model's own docstring is for library readers, like the attribute docstrings.
            inner = {"type": "object"} if name == ToolResult.__name__ else flat(
                {k: v for k, v in defs[name].items() if k != "description"})
            return {**inner, **flat({k: v for k, v in node.items() if k != "$ref"})}
        if "anyOf" in node:
            options = [option for option in node["anyOf"] if option != {"type": "null"}]
            if len(options) == 1:
                return {**flat(options[0]), **flat({k: v for k, v in node.items() if k != "anyOf"})}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "properties":
                out[key] = {name: flat(sub) for name, sub in value.items()}
            elif key not in ("title", "default", "$defs") and not (key == "additionalProperties" and value is True):
                out[key] = flat(value)
        return out

    root = defs.get(ToolResult.__name__, schema)  # a model that nests itself is all in $defs, the root a $ref
    properties = flat(root)["properties"]
    del properties["tool"]
    fields = ToolResult.model_fields
    required = [name for name in properties if fields[name].is_required() or (
        name not in _OMITTED_WHEN_EMPTY and fields[name].default_factory is not None)]
    return {"type": "object", "properties": properties, "required": required}


OUTPUT_SCHEMA: dict[str, Any] = _output_schema()
