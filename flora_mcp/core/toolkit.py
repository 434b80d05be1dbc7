"""Toolkit: FLORA techniques as tools, in one import, for MCP servers and LLM tool-calling pipelines alike.

    async with Toolkit(Settings(api_key="sk_live_...")) as toolkit:
        tools = toolkit.tool_definitions()  # MCP-shaped; see flora_mcp.export for others
        result = await toolkit.call("cctv-cam", {"input_image": "https://..."})
        print(result.status, [o.url for o in result.outputs], result.charged_cost)

The MCP server is built on this class: what a pipeline gets here is exactly what an MCP client gets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

from flora_mcp._net import is_loopback_host
from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import FloraError
from flora_mcp.api.models import Technique
from flora_mcp.api.retry import RetryPolicy
from flora_mcp.config import ConfigurationError, Settings
from flora_mcp.core import builtin as bt
from flora_mcp.core.cache import CatalogCache, default_cache_dir
from flora_mcp.core.catalog import Catalog, format_usd, load_techniques, technique_filter
from flora_mcp.core.journal import Journal
from flora_mcp.core.results import ToolResult
from flora_mcp.core.runs import ProgressCallback, RunManager, account_id
from flora_mcp.core.translator import CallPhase, from_failure, refusal
from flora_mcp.logs import add_secret

__all__ = ["COMPACT_THRESHOLD", "ConfigurationError", "Toolkit"]

log = logging.getLogger("flora_mcp.core.toolkit")

COMPACT_THRESHOLD = 40


class Toolkit:
    """FLORA techniques as callable tools, with validation, retries, waiting limits, cost caps and a run journal.

    Args:
        settings: where FLORA is, the key, and every limit; defaults to `Settings()` (the environment).
        journal: a run journal to share (hosted mode shares one among users); by default one at
            `settings.journal_path()`, closed with the toolkit.
        client: a ready FloraClient (tests, connection sharing); by default one is made from the settings.
    """

    def __init__(self, settings: Settings | None = None, *, journal: Journal | None = None,
                 client: FloraClient | None = None) -> None:
        self.settings = settings or Settings()
        key = self.settings.api_key_value() if client is not None else self.settings.require_api_key()
        add_secret(key)
        self._own_client = client is None
        self.client = client or FloraClient(
            api_key=key or "", base_url=self.settings.base_url, timeout=self.settings.request_timeout,
            retry=RetryPolicy(max_retries=self.settings.max_retries),
        )
        self._own_journal = journal is None
        self.journal = journal or Journal(self.settings.journal_path())
        self.account = account_id(self.settings.base_url, key or "")
        self.runs = RunManager(self.client, self.journal, self.settings, account=self.account)
        self._catalog: Catalog | None = None
        self._catalog_ready = anyio.Event()
        self._catalog_error: BaseException | None = None
        # Set once the number of techniques is known (the list pages are in), or the catalog is ready, or failed.
        self._listed = anyio.Event()
        self._listed_count: int | None = None
        self._served_definitions: tuple[object, list[dict[str, Any]]] | None = None
        self._schemas_gate: anyio.Event | None = None
        self.catalog_fetched_at: float | None = None
        """When the catalog being served was fetched from FLORA (seconds since the epoch)."""
        self.cache = _catalog_cache(self.settings, key)

    async def __aenter__(self) -> Toolkit:
        try:
            await self.load_catalog()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client and the journal this toolkit made."""
        if self._own_client:
            await self.client.aclose()
        if self._own_journal:
            self.journal.close()

    # The catalog -------------------------------------------------------------------------------------------------

    async def load_catalog(self) -> Catalog:
        """List every technique from FLORA, build the tools, and write the techniques to the catalog cache.

        All list pages first, then the summary items' schemas concurrently (not before `defer_schemas` allows).
        """
        try:
            techniques = await load_techniques(
                self.client, query=self.settings.query, concurrency=self.settings.catalog_concurrency,
                accept=technique_filter(self.settings.techniques), on_listed=self._on_listed,
            )
        except BaseException as exc:
            if self._catalog is None:
                self._catalog_error = exc
                self._catalog_ready.set()
                self._listed.set()
            raise
        self.set_catalog(Catalog.from_techniques(techniques))
        self.catalog_fetched_at = time.time()
        await self._save_cache(techniques)
        return self.catalog

    def load_cached_catalog(self) -> float | None:
        """Serve the cached catalog, if there is one; its age in seconds, or None when there is none."""
        cached = self.cache.load() if self.cache is not None else None
        if cached is None:
            return None
        self.set_catalog(Catalog.from_techniques(cached.techniques))
        self.catalog_fetched_at = cached.saved_at
        return cached.age()

    async def refresh_catalog(self) -> bool:
        """Load the catalog from FLORA again; True when the tool definitions changed."""
        before = self.tool_definitions() if self._catalog is not None else None
        await self.load_catalog()
        return before != self.tool_definitions()

    async def _save_cache(self, techniques: list[Technique]) -> None:
        if self.cache is None:
            return
        try:
            await anyio.to_thread.run_sync(self.cache.save, techniques)
        except OSError as exc:
            log.warning("cannot write the catalog cache %s: %s", self.cache.path, exc)

    def defer_schemas(self, until: anyio.Event) -> None:
        """When `tools/list` can be answered without the techniques' schemas, fetch none before `until` is set or
        something waits for the catalog (a tool call, say), whichever comes first.

        A server starting up sets this: in compact mode, hundreds of schema requests would only slow the import of
        the MCP SDK and the first answers, which need none of them.
        """
        self._schemas_gate = until

    async def _on_listed(self, listed: list[Technique]) -> None:
        if self._catalog is not None:
            return
        self._listed_count = len(listed)
        self._listed.set()
        gate = self._schemas_gate
        if gate is not None and self._compact_for(len(listed)) and any(t.is_summary for t in listed):
            await gate.wait()

    def set_catalog(self, catalog: Catalog) -> None:
        """Use this catalog from now on (a cached one at start-up, a refreshed one later)."""
        self._catalog = catalog
        self._catalog_error = None
        self._catalog_ready.set()
        self._listed.set()

    async def wait_for_catalog(self) -> Catalog:
        """The catalog, waiting for it to load if it is loading."""
        if self._catalog is None and self._schemas_gate is not None:
            self._schemas_gate.set()  # the schemas are needed now
        await self._catalog_ready.wait()
        if self._catalog is None:
            # Raised from the cause, by which the translator classifies it: FLORA unreachable is `connection_error`.
            raise FloraError(f"the technique catalog could not be loaded: {self._catalog_error}") from (
                self._catalog_error)
        return self._catalog

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            raise FloraError("the technique catalog is not loaded yet")
        return self._catalog

    @property
    def compact(self) -> bool:
        """Whether tools are offered as the compact trio rather than one tool per technique."""
        return self._compact_for(len(self.catalog))

    def _compact_for(self, count: int) -> bool:
        mode = self.settings.tools_mode
        return mode == "compact" or (mode == "auto" and count > COMPACT_THRESHOLD)

    async def wait_for_tool_definitions(self) -> list[dict[str, Any]]:
        """The tool definitions, as soon as they are known; the same list object until they change (do not modify).

        In compact mode the tools do not depend on the techniques' schemas: they are known once FLORA has said how many
        techniques there are (at once with FLORA_TOOLS_MODE=compact), before every schema has been fetched.
        """
        if self._catalog is None and self.settings.tools_mode != "compact":
            await self._listed.wait()
        early = self._catalog is None and (self.settings.tools_mode == "compact" or (
            self._listed_count is not None and self._compact_for(self._listed_count)))
        key: object = "compact" if early else await self.wait_for_catalog()
        served = self._served_definitions
        if served is None or served[0] is not key:
            served = self._served_definitions = (key, _compact_definitions(self) if early else self.tool_definitions())
        return served[1]

    def tool_definitions(self) -> list[dict[str, Any]]:
        """Every tool as an MCP-shaped dict (name, title, description, inputSchema, outputSchema, ...)."""
        if self.compact:
            return _compact_definitions(self)
        return self.catalog.definitions() + bt.run_tools(self.settings.max_wait)

    def export_tools(self, fmt: str) -> list[dict[str, Any]]:
        """Tool definitions in the shape one LLM API expects: mcp, anthropic, openai or gemini."""
        from flora_mcp.integrations.export import export_tools

        return export_tools(self.tool_definitions(), fmt)

    async def previews(self, result: ToolResult) -> list[Any]:
        """Small previews of a result's image outputs as MCP image content, when FLORA_PREVIEW is on.

        Never raises: a preview is a nicety, and the result goes without it (the failure is logged).
        """
        if not self.settings.preview or not result.outputs:
            return []
        from flora_mcp.core.previews import make_previews

        try:
            return await make_previews(result.outputs, flora_base_url=self.settings.base_url)
        except Exception:
            log.exception("previews failed; the result goes without them")
            return []

    # Calls -------------------------------------------------------------------------------------------------------

    async def call(self, name: str, arguments: Mapping[str, Any] | None = None, *,
                   progress: ProgressCallback | None = None, phase: CallPhase | None = None) -> ToolResult:
        """Execute one tool call; never raises for a failed call: the result says what went wrong.

        Args:
            name: a tool name from `tool_definitions()`.
            arguments: the tool's arguments.
            progress: awaited with (percent 0-100, message) while the call waits for its run.
            phase: for a caller that wraps more work around the call (MCP tasks): marked as the call's create
                requests leave and its runs appear, so that a later failure is classified by it too.

        Returns:
            The ToolResult: status, run id, outputs, cost, error and next step.
        """
        phase = phase or CallPhase()
        try:
            return await self._dispatch(name, dict(arguments or {}), progress, phase)
        except Exception as exc:
            return from_failure(name, exc, phase)

    async def _dispatch(self, name: str, args: dict[str, Any], progress: ProgressCallback | None,
                        phase: CallPhase) -> ToolResult:
        catalog = await self.wait_for_catalog()
        if name in bt.RUN_TOOLS:
            return await self._run_tool(name, args, progress, phase)
        if name in bt.COMPACT_TOOLS:
            return await self._compact_tool(name, args, progress, phase)
        tool = catalog.get(name)
        if tool is None:
            return refusal(name, None, f"There is no tool named {name!r}.", code="unknown_tool",
                           next_step="List the tools again; the catalog may have changed.")
        return await self.runs.run_tool(tool, args, progress=progress, phase=phase)

    async def _run_tool(self, name: str, args: dict[str, Any], progress: ProgressCallback | None,
                        phase: CallPhase) -> ToolResult:
        if name == bt.GET_RUN:
            run_id = args.get("run_id")
            wait = args.get("wait_seconds")
            if not isinstance(run_id, str) or not run_id.strip():
                return refusal(name, None, "run_id is required.", code="invalid_arguments")
            if wait is not None and (not isinstance(wait, int | float) or isinstance(wait, bool) or wait < 0):
                return refusal(name, None, "wait_seconds must be a number >= 0.", code="invalid_arguments")
            return await self.runs.resume(run_id.strip(), wait_seconds=wait, technique_for=self._technique_by_id,
                                          progress=progress, tool=name, phase=phase)
        if name == bt.LIST_RUNS:
            limit = args.get("limit", 20)
            limit = min(max(int(limit), 1), 100) if isinstance(limit, int | float) else 20
            entries = self.runs.recent(limit=limit, status=args.get("status"))
            rows = [{k: v for k, v in e.as_dict().items() if k not in ("inputs",)} for e in entries]
            return ToolResult(tool=name, status="completed", data={"runs": rows, "count": len(rows)},
                              session_spend=round(self.runs.session_spend, 6))
        spend = self.runs.spend()
        return ToolResult(tool=name, status="completed", data=spend, session_spend=spend["session_spend"])

    def _technique_by_id(self, technique_id: str | None) -> Any:
        if technique_id is None or self._catalog is None:
            return None
        tool = self._catalog.find(technique_id)
        return tool.technique if tool else None

    async def _compact_tool(self, name: str, args: dict[str, Any], progress: ProgressCallback | None,
                            phase: CallPhase) -> ToolResult:
        if name == bt.SEARCH:
            query = str(args.get("query") or "").lower()
            words = query.split()
            found = []
            for tool in self.catalog.tools.values():
                t = tool.technique
                hay = " ".join(filter(None, [tool.name, t.slug, t.name, t.description])).lower()
                if all(w in hay for w in words):
                    shape = ", ".join(f"{i.id}{'?' if i.optional else ''}:{i.type}" for i in t.inputs or [])
                    found.append(f"{tool.name}: {t.name} ({shape}) {format_usd(t.run_cost)}")
            return ToolResult(tool=name, status="completed",
                              data={"count": len(found), "techniques": found[:50]})
        ref = str(args.get("technique") or "")
        found_tool = self.catalog.find(ref)
        if found_tool is None:
            return refusal(name, None, f"No technique matches {ref!r}.", code="unknown_technique",
                           next_step="Use flora_search_techniques to find one.")
        if name == bt.DESCRIBE:
            d = found_tool.definition
            return ToolResult(tool=name, status="completed", data={
                "technique": found_tool.name, "title": d["title"], "description": d["description"],
                "inputSchema": d["inputSchema"], "run_cost": found_tool.technique.run_cost})
        inputs = args.get("inputs")
        if not isinstance(inputs, dict):
            return refusal(name, found_tool.technique, "inputs must be an object of {input_id: value}.")
        result = await self.runs.run_tool(found_tool, inputs, progress=progress, phase=phase)
        return result.model_copy(update={"tool": name})


def _compact_definitions(toolkit: Toolkit) -> list[dict[str, Any]]:
    return bt.compact_tools() + bt.run_tools(toolkit.settings.max_wait, full_schemas=False)


def _catalog_cache(settings: Settings, key: str | None) -> CatalogCache | None:
    """The catalog cache these settings ask for; none when FLORA_CATALOG_CACHE is 'off' or there is no key.

    A FLORA on loopback (the sandbox, on a new port each time) is cached only in a folder named explicitly: in the
    user's cache folder its files would pile up, one per port, never read again.
    """
    if (settings.catalog_cache or "").strip().lower() == "off" or not key:
        return None
    if settings.catalog_cache is None and is_loopback_host(urlsplit(settings.base_url).hostname):
        return None
    directory = Path(settings.catalog_cache).expanduser() if settings.catalog_cache else default_cache_dir()
    return CatalogCache(directory, base_url=settings.base_url, api_key=key, query=settings.query,
                        techniques=settings.techniques)
