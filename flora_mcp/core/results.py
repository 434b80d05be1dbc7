"""The result of a tool call, shared by the MCP server and the library API.

`ToolResult` is what `Toolkit.call` returns; `to_call_tool_result` turns it into the MCP `CallToolResult` (text for the
model, `structuredContent` matching `OUTPUT_SCHEMA`, `isError`). Everything the agent needs is in both: status, run id,
output URLs, cost, and the next step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import mcp.types

__all__ = ["OUTPUT_SCHEMA", "FieldError", "OutputFile", "RunStatus", "TechniqueRef", "ToolResult", "format_usd"]

# `invalid`: refused before anything reached FLORA; `error`: FLORA or the network answered with an error;
# `running`/`pending`: the call stopped waiting, the run goes on; `timed_out`: FLORA_RUN_TIMEOUT passed.
RunStatus = Literal["pending", "running", "completed", "failed", "timed_out", "invalid", "error"]
ERROR_STATUSES: frozenset[str] = frozenset({"failed", "invalid", "error"})


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
    """What one tool call produced, for the MCP server and for library users alike."""

    model_config = ConfigDict(extra="forbid")

    tool: str = Field(description="The tool that was called.")
    status: RunStatus
    run_id: str | None = None
    technique: TechniqueRef | None = None
    outputs: list[OutputFile] = Field(default_factory=list)
    charged_cost: float | None = None
    progress: float | None = Field(default=None, description="0-100.")
    error_code: str | None = None
    error_message: str | None = None
    error_fields: list[FieldError] = Field(default_factory=list)
    request_id: str | None = None
    next_step: str | None = Field(default=None, description="What the agent should do now.")
    session_spend: float | None = None
    runs: list[ToolResult] = Field(default_factory=list, description="Per-value results of a multiple-value call.")
    data: dict[str, Any] | None = Field(default=None, description="Payload of the informational tools.")

    @property
    def is_error(self) -> bool:
        """Whether the call failed (failed, invalid or error): the MCP `isError` flag."""
        return self.status in ERROR_STATUSES

    def structured(self) -> dict[str, Any]:
        """The `structuredContent` form: JSON-ready, empty and unset fields left out."""
        data = self.model_dump(mode="json", exclude_none=True, exclude={"tool"})
        for name in ("error_fields", "runs"):
            if not data.get(name):
                data.pop(name, None)
        return data

    def summary(self) -> str:
        """A few lines for the model: what happened, every URL, the cost, what to do next."""
        name = self.technique.name if self.technique else self.tool
        lines: list[str] = []
        if self.status == "completed":
            lines.append(f"{name}: run {self.run_id} completed.")
        elif self.status in ("running", "pending"):
            pct = f" ({self.progress:.0f}% done)" if self.progress is not None else ""
            lines.append(f"{name}: run {self.run_id} is still {self.status}{pct}.")
        elif self.status == "timed_out":
            lines.append(f"{name}: stopped waiting for run {self.run_id}; it may still finish on FLORA.")
        elif self.status == "failed":
            lines.append(f"{name}: run {self.run_id} failed: {self.error_code}: {self.error_message}")
        else:
            lines.append(f"{name}: {self.error_code or 'error'}: {self.error_message or 'the call failed'}")
            if self.run_id:
                lines.append(f"Run id: {self.run_id}")
        for field in self.error_fields:
            lines.append(f"- {field.field}: {field.message}")
        for out in self.outputs:
            lines.append(f"Output {out.output_id} ({out.type}): {out.url}")
        for sub in self.runs:
            lines.append(f"- {sub.summary()}")
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
        content.extend(extra_content or [])
        return types.CallToolResult(content=content, structured_content=self.structured(), is_error=self.is_error)


_OUTPUT = {
    "type": "object",
    "properties": {
        "output_id": {"type": "string"},
        "type": {"type": "string"},
        "url": {"type": "string"},
    },
    "required": ["output_id", "type", "url"],
}

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {
            "type": "string",
            "enum": ["pending", "running", "completed", "failed", "timed_out", "invalid", "error"],
            "description": "completed: outputs are ready. running/pending: call flora_get_run with run_id.",
        },
        "run_id": {"type": "string", "description": "FLORA run id; pass it to flora_get_run."},
        "technique": {
            "type": "object",
            "properties": {
                "technique_id": {"type": "string"},
                "slug": {"type": "string"},
                "name": {"type": "string"},
            },
            "required": ["technique_id", "name"],
        },
        "outputs": {"type": "array", "items": _OUTPUT},
        "charged_cost": {"type": "number", "description": "USD charged for this run."},
        "progress": {"type": "number"},
        "error_code": {"type": "string"},
        "error_message": {"type": "string"},
        "error_fields": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                "required": ["field", "message"],
            },
        },
        "request_id": {"type": "string"},
        "next_step": {"type": "string"},
        "session_spend": {"type": "number"},
        "runs": {"type": "array", "items": {"type": "object"}},
        "data": {"type": "object"},
    },
    "required": ["status", "outputs"],
}
