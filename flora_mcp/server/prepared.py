"""tools/list served from prepared wire dicts: a toolkit's definitions serialized once per protocol version.

For a handler's `ListToolsResult` the SDK validates and dumps every `Tool` again on each request (the result model,
then the negotiated version's surface, which drops the fields that version does not know): at 1,000 tools most of
a `tools/list` answer's cost, and at 11 tools in hosted mode most of a request's. Here the handler returns an empty
list, so the SDK still checks the request, applies the cache hints and shapes the envelope for the era, and
`prepared_tools_middleware` then puts in the tools: the SDK's own surface dump of the same definitions, made once
per (definitions, version). What a client receives is what it received before, for every version.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import mcp.types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp_types.methods import serialize_server_result

__all__ = ["PreparedTools", "prepared_slot", "prepared_tools_middleware"]

_SCHEMAS = ("inputSchema", "outputSchema")
_STAND_IN = {"type": "object"}

_SLOT: ContextVar[list[list[dict[str, Any]]] | None] = ContextVar("flora_prepared_tools", default=None)


class PreparedTools:
    """One toolkit's tool definitions: each tool's input schema by name, and the wire tools per protocol version."""

    def __init__(self, definitions: list[dict[str, Any]]) -> None:
        self.definitions = definitions
        self.schemas: dict[str, dict[str, Any]] = {d["name"]: d["inputSchema"] for d in definitions}
        self._wire: dict[str, list[dict[str, Any]]] = {}
        self._tools: list[types.Tool] | None = None

    def wire(self, version: str) -> list[dict[str, Any]]:
        """The `tools` of a `tools/list` answer on `version`, as the SDK would send them (ValueError/KeyError for a
        version it does not know, ValidationError for a definition it would refuse: as the SDK would raise)."""
        wire = self._wire.get(version)
        if wire is None:
            wire = self._wire[version] = self._dump(version)
        return wire

    def _dump(self, version: str) -> list[dict[str, Any]]:
        # The schemas are JSON objects that the surface takes as they are, past the `type: object` at their root:
        # it checks stand-ins, and the schemas go back in. Walking 1,000 copies of the output schema (70% of the
        # list's bytes) was most of the dump's cost. tests/server/test_prepared.py pins that the result is the same.
        light = [{k: _STAND_IN if k in _SCHEMAS and _object_schema(v) else v for k, v in d.items()}
                 for d in self.definitions]
        # The envelope's other fields only pass the surface's check (2026 requires them); its tools are kept.
        envelope = {"tools": light, "ttlMs": 0, "cacheScope": "private", "resultType": "complete"}
        wire: list[dict[str, Any]] = serialize_server_result("tools/list", version, envelope)["tools"]
        for tool, definition in zip(wire, self.definitions, strict=True):
            for key in _SCHEMAS:
                if key in tool and _object_schema(definition.get(key)):
                    tool[key] = definition[key]
        return wire

    @property
    def tools(self) -> list[types.Tool]:
        """The definitions as SDK `Tool`s: for an answer the middleware does not complete."""
        if self._tools is None:
            self._tools = [types.Tool.model_validate(d) for d in self.definitions]
        return self._tools


def _object_schema(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "object"


def prepared_slot() -> list[list[dict[str, Any]]] | None:
    """Where a `tools/list` handler puts its prepared tools; None outside `prepared_tools_middleware`."""
    return _SLOT.get()


async def prepared_tools_middleware(ctx: ServerRequestContext[Any], call_next: CallNext) -> HandlerResult:
    """Complete a `tools/list` answer with the tools its handler prepared (the innermost middleware, so that the
    ones outside it, the tasks' `execution` marks, see every tool)."""
    if ctx.method != "tools/list":
        return await call_next(ctx)
    slot: list[list[dict[str, Any]]] = []
    token = _SLOT.set(slot)
    try:
        answer = await call_next(ctx)
    finally:
        _SLOT.reset(token)
    if slot and isinstance(answer, dict):
        # A copy: the prepared list is served again, and what is outside this middleware may change the answer.
        return {**answer, "tools": list(slot[-1])}
    return answer
