"""Compact mode's three tools answered: search the techniques, describe one, run one by name.

They reach every technique of a large catalog with a tools/list that fits in `COMPACT_LIST_BUDGET` bytes (their
definitions are in core/builtin.py). A run goes through the same `RunManager.run_tool` as a technique's own tool.
"""

from __future__ import annotations

from typing import Any

from flora_mcp.core.catalog import Catalog
from flora_mcp.core.confirm import Confirmer
from flora_mcp.core.results import ToolResult, format_usd
from flora_mcp.core.runs import ProgressCallback, RootsProvider, RunManager
from flora_mcp.core.tool_names import DESCRIBE, RUN, SEARCH
from flora_mcp.core.translator import CallPhase, informational, refusal

__all__ = ["MAX_SEARCH_RESULTS", "call_compact_tool"]

MAX_SEARCH_RESULTS = 50


async def call_compact_tool(name: str, args: dict[str, Any], catalog: Catalog, runs: RunManager, *,
                            progress: ProgressCallback | None, phase: CallPhase,
                            confirm: Confirmer | None = None, roots: RootsProvider | None = None) -> ToolResult:
    """Answer flora_search_techniques, flora_describe_technique or flora_run_technique."""
    if name == SEARCH:
        return search(catalog, str(args.get("query") or ""))
    ref = str(args.get("technique") or "")
    tool = catalog.find(ref)
    if tool is None:
        return refusal(name, None, f"No technique matches {ref!r}.", code="unknown_technique",
                       next_step=f"Use {SEARCH} to find one.")
    if name == DESCRIBE:
        definition = tool.definition
        return informational(DESCRIBE, {
            "technique": tool.name, "title": definition["title"], "description": definition["description"],
            "inputSchema": definition["inputSchema"], "run_cost": tool.technique.run_cost})
    inputs = args.get("inputs")
    if not isinstance(inputs, dict):
        return refusal(RUN, tool.technique, "inputs must be an object of {input_id: value}.")
    result = await runs.run_tool(tool, inputs, progress=progress, phase=phase, confirm=confirm, roots=roots)
    return result.model_copy(update={"tool": RUN})


def search(catalog: Catalog, query: str) -> ToolResult:
    """The techniques whose names and description hold every word of `query`: name, inputs and price of each."""
    words = query.lower().split()
    found = []
    for tool in catalog.tools.values():
        technique = tool.technique
        haystack = " ".join(filter(None, [tool.name, technique.slug, technique.name, technique.description])).lower()
        if all(word in haystack for word in words):
            shape = ", ".join(f"{i.id}{'?' if i.optional else ''}:{i.type}" for i in technique.inputs or [])
            found.append(f"{tool.name}: {technique.name} ({shape}) {format_usd(technique.run_cost)}")
    return informational(SEARCH, {"count": len(found), "techniques": found[:MAX_SEARCH_RESULTS]})
