"""MCP wiring: tools/list, tools/call with progress, and runs as resources, on top of a Toolkit.

The server holds no FLORA logic of its own: every answer comes from `Toolkit`, so an MCP client and a library user get
the same results. `resolve` picks the toolkit of a request: one for stdio, one per user's key in hosted mode.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import mcp.types as types
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import ListenHandler
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from flora_mcp._version import __version__
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.core.translator import CONFIRMATION_REQUIRED, CallPhase, from_failure
from flora_mcp.logs import redact, redact_value
from flora_mcp.server import identity
from flora_mcp.server.confirm import ConfirmationRounds, request_state_boundary
from flora_mcp.server.identity import INSTRUCTIONS
from flora_mcp.server.notifications import ToolListNotifier
from flora_mcp.server.prepared import PreparedTools, prepared_slot, prepared_tools_middleware
from flora_mcp.server.roots import roots_of
from flora_mcp.server.task_store import TaskStore
from flora_mcp.server.tasks import install_tasks
from flora_mcp.server.tasks_ext import install_tasks_extension
from flora_mcp.server.tracing import drop_idle_tracing

__all__ = ["INSTRUCTIONS", "ToolkitResolver", "create_server"]

log = logging.getLogger("flora_mcp.server.handlers")

def not_found(uri: str, message: str) -> MCPError:
    """What an unknown resource gets in both eras: -32602 with the URI in `data` (SEP-2164 of 2026-07-28)."""
    return MCPError(INVALID_PARAMS, message, data={"uri": uri})


ToolkitResolver = Callable[[ServerRequestContext[Any]], Awaitable[Toolkit]]

RUN_URI = "flora://runs/{run_id}"
SPEND_URI = "flora://spend"


def create_server(resolve: ToolkitResolver, *, notifier: ToolListNotifier | None = None,
                  known_toolkit: Callable[[], Toolkit | None] | None = None,
                  state_keys: str | None = None) -> Server[Any]:
    """The MCP server for the toolkit(s) that `resolve` hands out.

    Args:
        resolve: the toolkit of a request.
        notifier: remembers which clients use which toolkit, to tell them when its tools change (see
            `flora_mcp.core.refresh`); its bus feeds `subscriptions/listen`. A private one by default.
        known_toolkit: the toolkit that serves every request, when there is one (stdio, a hosted server's own
            key): its catalog answers the input-schema lookups of 2026 HTTP calls without listing the tools.
        state_keys: FLORA_STATE_KEYS, the secrets that seal 2026 confirmation state (see server/confirm.py); a key
            of this process's own when None.
    """
    # Per toolkit, and gone with it: a hosted server builds one toolkit per user key.
    tool_cache: weakref.WeakKeyDictionary[Toolkit, PreparedTools] = weakref.WeakKeyDictionary()
    notifier = notifier or ToolListNotifier()
    rounds = ConfirmationRounds()

    def listed(toolkit: Toolkit, definitions: list[dict[str, Any]]) -> PreparedTools:
        cached = tool_cache.get(toolkit)
        if cached is None or cached.definitions is not definitions:
            cached = tool_cache[toolkit] = PreparedTools(definitions)
        return cached

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                         ) -> types.ListToolsResult:
        toolkit = await resolve(ctx)
        notifier.remember(ctx, toolkit)
        cached = listed(toolkit, await toolkit.wait_for_tool_definitions())
        ttl_ms = identity.tools_list_ttl_ms(toolkit.settings)
        return types.ListToolsResult(tools=_tools_for(cached, ctx), ttl_ms=ttl_ms, cache_scope="private")

    def input_schema(name: str) -> dict[str, Any] | None:
        """A tool's input schema for the SDK's `Mcp-Param-*` checks of a 2026 HTTP `tools/call`, without running
        `tools/list` (a 1,000-tool list per call otherwise). None when unknown: the SDK then checks nothing, which
        is all there is to check, as no flora-mcp schema declares `x-mcp-header`."""
        toolkit = known_toolkit() if known_toolkit is not None else None
        catalog = toolkit.loader.current if toolkit is not None else None
        tool = catalog.get(name) if catalog is not None else None
        if tool is not None:
            return tool.input_schema
        for cached in list(tool_cache.values()):
            if name in cached.schemas:
                return cached.schemas[name]
        return None

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
                        ) -> types.CallToolResult | types.InputRequiredResult:
        try:
            toolkit = await resolve(ctx)
        except Exception as exc:
            # No toolkit (hosted: its key's catalog could not load): nothing was sent, as the translator tells.
            return from_failure(params.name, exc, CallPhase()).to_call_tool_result()
        notifier.remember(ctx, toolkit)
        confirmation = rounds.start(ctx, params, toolkit.account)

        async def progress(percent: float, message: str) -> None:
            await ctx.session.report_progress(percent, 100.0, message)

        result = await toolkit.call(params.name, params.arguments or {}, progress=progress,
                                    confirm=confirmation.confirmer, roots=roots_of(ctx.session))
        if confirmation.asked is not None and result.error_code == CONFIRMATION_REQUIRED:
            return rounds.input_required(confirmation.asked, toolkit.account)  # 2026: the retry brings the answer
        return result.to_call_tool_result(await toolkit.previews(result))

    async def list_resources(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                             ) -> types.ListResourcesResult:
        toolkit = await resolve(ctx)
        resources = [types.Resource(name="spend", title="FLORA spend", uri=SPEND_URI, mime_type="application/json",
                                    description="Spend per technique and this session's total.")]
        for entry in await toolkit.runs.recent(limit=50):
            if entry.run_id:
                resources.append(types.Resource(
                    name=entry.run_id, title=redact(f"{entry.technique_name} run ({entry.status})"),
                    uri=RUN_URI.format(run_id=entry.run_id), mime_type="application/json"))
        return types.ListResourcesResult(resources=resources)

    async def list_templates(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                             ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=[types.ResourceTemplate(
            name="run", title="FLORA run", uri_template=RUN_URI, mime_type="application/json",
            description="A run flora-mcp submitted: status, inputs, outputs, cost.")])

    async def read_resource(ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
                            ) -> types.ReadResourceResult:
        toolkit = await resolve(ctx)
        uri = str(params.uri)
        if uri == SPEND_URI:
            body: Any = await toolkit.runs.spend()
        elif uri.startswith("flora://runs/"):
            run_id = uri.removeprefix("flora://runs/")
            entry = await toolkit.journal.get(toolkit.account, run_id)
            if entry is None:
                raise not_found(uri, f"No run {run_id} in this server's journal")
            body = entry.as_dict()
        else:
            raise not_found(uri, f"Unknown resource {uri}")
        # Redacted as it leaves: a row written before its key was registered (an older flora-mcp) holds it as is.
        return types.ReadResourceResult(contents=[types.TextResourceContents(
            uri=uri, mime_type="application/json", text=json.dumps(redact_value(body), indent=2))])

    server = Server(
        identity.NAME,
        version=__version__,
        title=identity.TITLE,
        description=identity.DESCRIPTION,
        instructions=INSTRUCTIONS,
        website_url=identity.WEBSITE,
        icons=identity.icons(),
        cache_hints=identity.cache_hints(),
        get_tool_input_schema=input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
        on_subscriptions_listen=ListenHandler(notifier.bus),
    )
    drop_idle_tracing(server)  # before ours: only the SDK's layer goes
    server.middleware.append(request_state_boundary(state_keys))
    # MCP tasks for the clients that speak them: 2025-11-25 sessions, and 2026 requests declaring the extension.
    tasks = TaskStore()
    tasks.attach(server)
    install_tasks(server, resolve, tasks)
    install_tasks_extension(server, resolve, tasks)
    server.middleware.append(prepared_tools_middleware)  # innermost: the tasks' marks go on the prepared tools
    return server


def _tools_for(prepared: PreparedTools, ctx: ServerRequestContext[Any]) -> list[types.Tool]:
    """Empty when prepared_tools_middleware puts the prepared tools in; else every tool, for the SDK to dump."""
    slot = prepared_slot()
    if slot is not None:
        try:
            slot.append(prepared.wire(ctx.protocol_version))
            return []
        except Exception:
            pass  # the SDK's own dump of the tools then says what is wrong
    return prepared.tools
