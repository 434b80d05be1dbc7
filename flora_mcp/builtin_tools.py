"""The tools flora-mcp adds beside the techniques: resume and list runs, spend, and the compact-mode trio."""

from __future__ import annotations

from typing import Any

from flora_mcp.results import OUTPUT_SCHEMA

__all__ = ["COMPACT_TOOLS", "RUN_TOOLS", "compact_tools", "run_tools"]

GET_RUN = "flora_get_run"
LIST_RUNS = "flora_list_runs"
SPEND = "flora_spend"
SEARCH = "flora_search_techniques"
DESCRIBE = "flora_describe_technique"
RUN = "flora_run_technique"

_READ_ONLY = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": True}
_PAID = {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False, "openWorldHint": True}


def run_tools(max_wait: float, *, full_schemas: bool = True) -> list[dict[str, Any]]:
    """flora_get_run, flora_list_runs and flora_spend."""
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
                "status": {"type": "string", "enum": ["pending", "running", "completed", "failed", "unknown",
                                                      "error", "submitting"]},
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
    if full_schemas:
        get_run["outputSchema"] = OUTPUT_SCHEMA
    return [get_run, list_runs, spend]


def compact_tools() -> list[dict[str, Any]]:
    """Three tools that reach every technique without listing each one."""
    return [
        {
            "name": SEARCH,
            "description": "Find FLORA techniques (image, video, audio, text workflows): name, inputs, cost.",
            "inputSchema": {"type": "object", "properties": {"query": {"type": "string"}},
                            "additionalProperties": False},
            "annotations": _READ_ONLY,
        },
        {
            "name": DESCRIBE,
            "description": "A technique's full input schema.",
            "inputSchema": {"type": "object", "properties": {"technique": {"type": "string"}},
                            "required": ["technique"], "additionalProperties": False},
            "annotations": _READ_ONLY,
        },
        {
            "name": RUN,
            "description": ("Run a technique and wait for its outputs (URLs, cost). inputs: {input_id: value}. "
                            "Paid. If status is running, call flora_get_run."),
            "inputSchema": {"type": "object",
                            "properties": {"technique": {"type": "string"}, "inputs": {"type": "object"}},
                            "required": ["technique", "inputs"], "additionalProperties": False},
            "annotations": _PAID,
        },
    ]


RUN_TOOLS = frozenset({GET_RUN, LIST_RUNS, SPEND})
COMPACT_TOOLS = frozenset({SEARCH, DESCRIBE, RUN})
