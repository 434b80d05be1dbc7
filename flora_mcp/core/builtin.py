"""The tools flora-mcp adds beside the techniques: resume and list runs, spend, and the compact-mode trio."""

from __future__ import annotations

from typing import Any

from flora_mcp.core.results import OUTPUT_SCHEMA

__all__ = ["COMPACT_LIST_BUDGET", "COMPACT_TOOLS", "RUN_TOOLS", "compact_tools", "run_tools"]

GET_RUN = "flora_get_run"
LIST_RUNS = "flora_list_runs"
SPEND = "flora_spend"
SEARCH = "flora_search_techniques"
DESCRIBE = "flora_describe_technique"
RUN = "flora_run_technique"

RUN_STATUSES = ("pending", "running", "completed", "failed", "unknown", "error", "submitting")
"""A journal entry's statuses, for flora_list_runs' filter (the compact form leaves out the fleeting last one)."""
COMPACT_LIST_BUDGET = 2026
"""Bytes of the compact mode's whole tools/list result: the size of FLORA's own two-tool MCP server."""

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
                "run_id": {"type": "string", "minLength": 1, "description": "The run_id a technique call returned."},
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
                "status": {"type": "string", "enum": list(RUN_STATUSES)},
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
                                    "status": {"type": "string", "enum": list(RUN_STATUSES[:-1])}}),
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
                            "URLs and cost; if status is running, call flora_get_run with run_id."),
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


RUN_TOOLS = frozenset({GET_RUN, LIST_RUNS, SPEND})
COMPACT_TOOLS = frozenset({SEARCH, DESCRIBE, RUN})
