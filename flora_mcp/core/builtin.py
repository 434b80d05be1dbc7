"""The tools flora-mcp adds beside the techniques: their definitions, and the handlers of the run tools.

`flora_get_run`, `flora_list_runs` and `flora_spend` are answered here (`call_run_tool`); the compact-mode trio is
defined here and answered in core/compact.py. Their names are in core/tool_names.py. The arguments of each are
checked against the schema it is listed with (`builtin_refusal`), as a technique tool's are.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from flora_mcp.api.models import Technique
from flora_mcp.core.arguments import argument_errors, schema_validator
from flora_mcp.core.results import OUTPUT_SCHEMA, FieldError, ToolResult
from flora_mcp.core.runs import ProgressCallback, RunManager
from flora_mcp.core.tool_names import COMPACT_TOOLS, DESCRIBE, GET_RUN, LIST_RUNS, RUN, RUN_TOOLS, SEARCH, SPEND
from flora_mcp.core.translator import CallPhase, informational, refusal
from flora_mcp.store import JOURNAL_STATUSES

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

__all__ = ["COMPACT_LIST_BUDGET", "COMPACT_TOOLS", "MAX_RUN_ID", "RUN_TOOLS", "builtin_refusal", "call_run_tool",
           "compact_tools", "run_tools"]

# flora_list_runs' filter; the compact form leaves out `submitting`, a status a row has for a moment only.
_LISTED_STATUSES = list(JOURNAL_STATUSES)
_COMPACT_LISTED_STATUSES = [s for s in JOURNAL_STATUSES if s != "submitting"]
COMPACT_LIST_BUDGET = 2026
"""Bytes of the compact mode's whole tools/list result: the size of FLORA's own two-tool MCP server."""
MAX_RUN_ID = 200
"""The longest run_id flora_get_run takes: FLORA's are ~20 characters; a longer one is no run id."""

_READ_ONLY = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": True}
_PAID = {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False, "openWorldHint": True}


def run_tools(max_wait: float, *, full_schemas: bool = True) -> list[dict[str, Any]]:
    """flora_get_run, flora_list_runs and flora_spend; `full_schemas=False` gives the compact mode's short forms."""
    if not full_schemas:
        return _compact_run_tools(max_wait)
    get_run: dict[str, Any] = {
        "name": GET_RUN,
        "title": "Get FLORA run",
        "description": ("Check on a FLORA run by run_id and wait for it to finish (with progress). Use it when a "
                        "technique call returned status running. Returns outputs and cost like the technique tool."),
        "inputSchema": {
            "type": "object",
            "properties": {
                "run_id": {"type": "string", "minLength": 1, "maxLength": MAX_RUN_ID,
                           "description": "The run_id a technique call returned."},
                "wait_seconds": {"type": "number", "minimum": 0, "maximum": max_wait,
                                 "description": f"How long to wait for the run, 0 to {max_wait:g} s (default)."},
            },
            "required": ["run_id"],
            "additionalProperties": False,
        },
        "outputSchema": OUTPUT_SCHEMA,
        "annotations": {"title": "Get FLORA run", **_READ_ONLY},
    }
    list_runs: dict[str, Any] = {
        "name": LIST_RUNS,
        "title": "List FLORA runs",
        "description": "Recent runs this server submitted, newest first: run_id, technique, status, cost.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "At most this many."},
                "status": {"type": "string", "enum": _LISTED_STATUSES},
            },
            "additionalProperties": False,
        },
        "annotations": {"title": "List FLORA runs", **_READ_ONLY},
    }
    spend: dict[str, Any] = {
        "name": SPEND,
        "title": "FLORA spend",
        "description": "What runs have cost: this session's total, all-time per technique, and the caps in force.",
        "inputSchema": {"type": "object", "properties": {}, "additionalProperties": False},
        "annotations": {"title": "FLORA spend", **_READ_ONLY},
    }
    return [get_run, list_runs, spend]


# Compact mode: every byte of tools/list is paid in context on every turn, and the whole list must fit in
# COMPACT_LIST_BUDGET. Annotations keep only what differs from the spec's defaults (a read-only tool's other hints
# mean nothing; a tool that is not read-only is assumed destructive unless it says otherwise); no titles.
_SHORT_READ_ONLY = {"readOnlyHint": True}
_SHORT_PAID = {"destructiveHint": False}


def _compact_run_tools(max_wait: float) -> list[dict[str, Any]]:
    return [
        {
            "name": GET_RUN,
            "description": "Wait for a run by run_id (a result with status running gave it); returns outputs, cost.",
            "inputSchema": _object({"run_id": {"type": "string"},
                                    "wait_seconds": {"type": "number", "minimum": 0, "maximum": max_wait}},
                                   ["run_id"]),
            "annotations": _SHORT_READ_ONLY,
        },
        {
            "name": LIST_RUNS,
            "description": "Recent runs, newest first: run_id, technique, status, cost.",
            "inputSchema": _object({"limit": {"type": "integer", "maximum": 100},
                                    "status": {"type": "string", "enum": _COMPACT_LISTED_STATUSES}}),
            "annotations": _SHORT_READ_ONLY,
        },
        {
            "name": SPEND,
            "description": "Spend: this session, per technique, and the caps.",
            "inputSchema": _object({}),
            "annotations": _SHORT_READ_ONLY,
        },
    ]


def compact_tools() -> list[dict[str, Any]]:
    """Three tools that reach every technique without listing each one."""
    return [
        {
            "name": SEARCH,
            "description": ("Find FLORA techniques (image, video, audio, text workflows) by words; no query lists all. "
                            "Each: name, inputs (id:type, ? if optional), cost per run."),
            "inputSchema": _object({"query": {"type": "string"}}),
            "annotations": _SHORT_READ_ONLY,
        },
        {
            "name": DESCRIBE,
            "description": "A technique's full input schema and cost.",
            "inputSchema": _object({"technique": {"type": "string"}}, ["technique"]),
            "annotations": _SHORT_READ_ONLY,
        },
        {
            "name": RUN,
            "description": ("Run a technique (paid) with inputs {input_id: value}, media as URLs. Returns output "
                            f"URLs and cost; if status is running, call {GET_RUN} with run_id."),
            "inputSchema": _object({"technique": {"type": "string"}, "inputs": {"type": "object"}},
                                   ["technique", "inputs"]),
            "annotations": _SHORT_PAID,
        },
    ]


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema


# The run tools' handlers ---------------------------------------------------------------------------------------

DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 100


def builtin_refusal(name: str, args: Mapping[str, Any], *, max_wait: float, compact: bool) -> ToolResult | None:
    """The refusal of a call to one of flora-mcp's own tools whose arguments its listed schema rejects, or None.

    `compact`: the run tools are listed in their short forms (compact mode); the compact trio has one form only.
    """
    errors = argument_errors(_validators(max_wait, compact)[name], args)
    if not errors:
        return None
    problems = sorted({(e.field, e.message): e for e in errors}.values(), key=lambda e: e.field)
    count = len(problems)
    return refusal(name, None, f"{count} invalid argument{'s' * (count != 1)}: "
                   + ", ".join(dict.fromkeys(p.field for p in problems)), problems)


@functools.cache
def _validators(max_wait: float, compact: bool) -> dict[str, Draft202012Validator]:
    tools = run_tools(max_wait, full_schemas=not compact) + compact_tools()
    return {tool["name"]: schema_validator(tool["inputSchema"]) for tool in tools}


async def call_run_tool(name: str, args: dict[str, Any], runs: RunManager, *,
                        technique_for: Callable[[str | None], Technique | None],
                        progress: ProgressCallback | None, phase: CallPhase) -> ToolResult:
    """Answer flora_get_run, flora_list_runs or flora_spend."""
    if name == GET_RUN:
        return await _get_run(args, runs, technique_for=technique_for, progress=progress, phase=phase)
    if name == LIST_RUNS:
        return await _list_runs(args, runs)
    spend = await runs.spend()
    return informational(SPEND, spend, session_spend=spend["session_spend"])


async def _get_run(args: dict[str, Any], runs: RunManager, *, technique_for: Callable[[str | None], Technique | None],
                   progress: ProgressCallback | None, phase: CallPhase) -> ToolResult:
    run_id: str = args["run_id"].strip()  # the schema made it a string
    problem = ("must not be blank" if not run_id else  # the compact form's short schema has no maxLength
               f"must be at most {MAX_RUN_ID} characters, got {len(run_id)}" if len(run_id) > MAX_RUN_ID else None)
    if problem is not None:
        return refusal(GET_RUN, None, "1 invalid argument: run_id", [FieldError(field="run_id", message=problem)])
    return await runs.resume(run_id, wait_seconds=args.get("wait_seconds"), technique_for=technique_for,
                             progress=progress, tool=GET_RUN, phase=phase)


async def _list_runs(args: dict[str, Any], runs: RunManager) -> ToolResult:
    # The schema made `limit` a whole number (in the compact form, of no lower bound) and `status` a journal status.
    limit = min(max(int(args.get("limit", DEFAULT_LIST_LIMIT)), 1), MAX_LIST_LIMIT)
    entries = await runs.recent(limit=limit, status=args.get("status"))
    rows = [{k: v for k, v in e.as_dict().items() if k != "inputs"} for e in entries]
    spent = round(await runs.session_spend(), 6)
    return informational(LIST_RUNS, {"runs": rows, "count": len(rows)}, session_spend=spent)
