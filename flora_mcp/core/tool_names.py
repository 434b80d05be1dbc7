"""The names of the tools flora-mcp adds beside the techniques, defined once; a technique never takes one."""

from __future__ import annotations

__all__ = ["COMPACT_TOOLS", "DESCRIBE", "GET_RUN", "LIST_RUNS", "RESERVED_NAMES", "RUN", "RUN_TOOLS", "SEARCH", "SPEND"]

GET_RUN = "flora_get_run"
LIST_RUNS = "flora_list_runs"
SPEND = "flora_spend"
SEARCH = "flora_search_techniques"
DESCRIBE = "flora_describe_technique"
RUN = "flora_run_technique"

RUN_TOOLS = frozenset({GET_RUN, LIST_RUNS, SPEND})
"""Listed in every mode: runs by id, the journal, the spend."""
COMPACT_TOOLS = frozenset({SEARCH, DESCRIBE, RUN})
"""Listed instead of the techniques in compact mode."""
RESERVED_NAMES = RUN_TOOLS | COMPACT_TOOLS
