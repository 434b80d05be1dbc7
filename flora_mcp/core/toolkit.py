"""Toolkit: FLORA techniques as tools, in one import, for MCP servers and LLM tool-calling pipelines alike.

    async with Toolkit(Settings(api_key="sk_live_...")) as toolkit:
        tools = toolkit.tool_definitions()  # MCP-shaped; see flora_mcp.export for others
        result = await toolkit.call("cctv-cam", {"input_image": "https://..."})
        print(result.status, [o.url for o in result.outputs], result.charged_cost)

The MCP server is built on this class: what a pipeline gets here is exactly what an MCP client gets.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import closing
from typing import Any

import anyio

from flora_mcp.api.assets import Assets
from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import UploadError
from flora_mcp.api.models import Technique
from flora_mcp.config import ConfigurationError, Settings
from flora_mcp.core.builtin import builtin_refusal, call_run_tool
from flora_mcp.core.cache import CatalogCache
from flora_mcp.core.catalog import Catalog
from flora_mcp.core.compact import call_compact_tool
from flora_mcp.core.completions import Completions
from flora_mcp.core.confirm import Confirmer
from flora_mcp.core.loading import COMPACT_THRESHOLD, CatalogLoader, TechniqueSource, catalog_cache_for, flora_client
from flora_mcp.core.media_in import MediaInputs, WorkspaceChooser
from flora_mcp.core.media_out import OutputSaver
from flora_mcp.core.results import InputUpload, ToolResult
from flora_mcp.core.runs import ProgressCallback, RootsProvider, RunManager, account_id
from flora_mcp.core.tool_names import COMPACT_TOOLS, RUN_TOOLS
from flora_mcp.core.translator import CallPhase, from_failure, refusal
from flora_mcp.logs import add_secret
from flora_mcp.store import Store, open_store

__all__ = ["COMPACT_THRESHOLD", "ConfigurationError", "Toolkit"]

log = logging.getLogger("flora_mcp.core.toolkit")


class Toolkit:
    """FLORA techniques as callable tools, with validation, retries, waiting limits, cost caps and a run journal.

    Args:
        settings: where FLORA is, the key, and every limit; defaults to `Settings()` (the environment).
        journal: the store to share (hosted mode shares one among users); by default one at
            `settings.store_location()` (FLORA_DATABASE_URL, else the FLORA_JOURNAL file), closed with the toolkit.
        client: a ready FloraClient (tests, connection sharing); by default one is made from the settings.
        local_files: whether media inputs may name local files (False in hosted mode: the server's disk is not the
            user's; `data:` values are still taken, within FLORA_MAX_DATA_URL_BYTES).
        account: the journal account whose runs, spend and tasks this toolkit has (hosted mode: one per principal);
            by default one per base URL and key.
        journal_only: resume only runs this account's journal holds, never one FLORA alone knows (hosted mode,
            when principals share a key: a run id FLORA knows may be another principal's).
        completions: FLORA's webhooks, received by a hosted server: runs carry its callback URL and their waits end
            when the webhook comes (`flora_mcp.core.completions`); None polls alone.
    """

    def __init__(self, settings: Settings | None = None, *, journal: Store | None = None,
                 client: FloraClient | None = None, local_files: bool = True, account: str | None = None,
                 journal_only: bool = False, completions: Completions | None = None) -> None:
        self.settings = settings or Settings()
        key = self.settings.api_key_value() if client is not None else self.settings.require_api_key()
        add_secret(key)
        self._own_client = client is None
        self.client = client or flora_client(self.settings, key or "")
        self._own_journal = journal is None
        self.journal = journal or open_store(self.settings.store_location())
        self.account = account or account_id(self.settings.base_url, key or "")
        self.assets = Assets(self.client)
        self.media = MediaInputs(self.assets, self.journal, self.account,
                                 WorkspaceChooser(self.client, self.settings.workspace_id))
        self.runs = RunManager(self.client, self.journal, self.settings, account=self.account, media=self.media,
                               local_files=local_files, journal_only=journal_only, completions=completions)
        self.outputs = OutputSaver(self.settings)
        self.loader = CatalogLoader(self.client, self.settings, catalog_cache_for(self.settings, key))

    async def __aenter__(self) -> Toolkit:
        try:
            await self.journal.open()
            await self.load_catalog()
            await self.runs.reconcile()  # rows a killed process left without a run id: FLORA has their runs
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
            await self.journal.aclose()

    # The catalog (see CatalogLoader) ----------------------------------------------------------------------------

    @property
    def cache(self) -> CatalogCache | None:
        """The catalog cache on disk, or None when FLORA_CATALOG_CACHE is off (or FLORA is the sandbox)."""
        return self.loader.cache

    async def load_catalog(self, source: TechniqueSource | None = None) -> Catalog:
        """List every technique from FLORA, build the tools, and write the techniques to the catalog cache.

        All list pages first, then the summary items' schemas concurrently (not before `defer_schemas` allows).
        With `source`, the techniques it has (a child process's, at start-up: core/catalog_process.py), if any.
        """
        return await self.loader.load(source)

    def load_cached_catalog(self) -> float | None:
        """Serve the cached catalog, if there is one; its age in seconds, or None when there is none."""
        return self.loader.load_cached()

    async def refresh_catalog(self) -> bool:
        """Load the catalog from FLORA again; True when the tool definitions changed."""
        return await self.loader.refresh()

    def defer_schemas(self, until: anyio.Event) -> None:
        """When `tools/list` can be answered without the techniques' schemas, fetch none before `until` is set or
        something waits for the catalog (a tool call, say), whichever comes first.

        A server starting up sets this: in compact mode, hundreds of schema requests would only slow the import of
        the MCP SDK and the first answers, which need none of them.
        """
        self.loader.defer_schemas(until)

    def set_catalog(self, catalog: Catalog) -> None:
        """Use this catalog from now on (a cached one at start-up, a refreshed one later)."""
        self.loader.use(catalog)

    async def wait_for_catalog(self) -> Catalog:
        """The catalog, waiting for it to load if it is loading."""
        return await self.loader.wait()

    @property
    def catalog(self) -> Catalog:
        """The catalog being served; FloraError before it is loaded."""
        return self.loader.catalog

    @property
    def compact(self) -> bool:
        """Whether tools are offered as the compact trio rather than one tool per technique."""
        return self.loader.compact_for(len(self.catalog))

    async def wait_for_tool_definitions(self) -> list[dict[str, Any]]:
        """The tool definitions, as soon as they are known; the same list object until they change (do not modify)."""
        return await self.loader.wait_for_definitions()

    def tool_definitions(self) -> list[dict[str, Any]]:
        """Every tool as an MCP-shaped dict (name, title, description, inputSchema, outputSchema, ...)."""
        return self.loader.definitions()

    def export_tools(self, fmt: str) -> list[dict[str, Any]]:
        """Tool definitions in the shape one LLM API expects: mcp, anthropic, openai or gemini."""
        from flora_mcp.integrations.export import export_tools

        return export_tools(self.tool_definitions(), fmt)

    async def previews(self, result: ToolResult) -> list[Any]:
        """MCP content beside a result's text: a `resource_link` per output (and per saved file), and small previews
        of its image outputs unless FLORA_PREVIEW is off.

        Never raises: these are niceties, and the result goes without them (the failure is logged).
        """
        if not result.outputs:
            return []
        from flora_mcp.core.media_out import result_links

        links: list[Any] = result_links(result)
        if not self.settings.preview:
            return links
        from flora_mcp.core.previews import make_previews

        try:
            return [*links, *await make_previews(result.outputs, flora_base_url=self.settings.base_url)]
        except Exception:
            log.exception("previews failed; the result goes without them")
            return links

    # Calls -------------------------------------------------------------------------------------------------------

    async def call(self, name: str, arguments: Mapping[str, Any] | None = None, *,
                   progress: ProgressCallback | None = None, phase: CallPhase | None = None,
                   confirm: Confirmer | None = None, roots: RootsProvider | None = None) -> ToolResult:
        """Execute one tool call; never raises for a failed call: the result says what went wrong.

        Args:
            name: a tool name from `tool_definitions()`.
            arguments: the tool's arguments; a media input may name a local file or a `data:` URL, uploaded first.
            progress: awaited with (percent 0-100, message) while the call uploads and waits for its run.
            phase: for a caller that wraps more work around the call (MCP tasks): marked as the call's create
                requests leave and its runs appear, so that a later failure is classified by it too.
            confirm: asks the person before a call FLORA_CONFIRM_ABOVE says needs it (see `flora_mcp.core.confirm`);
                without it such a call is refused, never run unasked.
            roots: the client's MCP roots, asked when a call names a local file: the folders it may come from.

        Returns:
            The ToolResult: status, run id, outputs (saved under FLORA_OUTPUT_DIR when set), cost, uploads, error
            and next step; redacted (`ToolResult.redacted`), whoever shows it.
        """
        phase = phase or CallPhase()
        try:
            result = await self._dispatch(name, dict(arguments or {}), progress, phase, confirm, roots)
        except Exception as exc:
            return from_failure(name, exc, phase).redacted()
        return (await self.outputs.save(result, self._tool_name_for(result))).redacted()

    async def _dispatch(self, name: str, args: dict[str, Any], progress: ProgressCallback | None,
                        phase: CallPhase, confirm: Confirmer | None, roots: RootsProvider | None = None
                        ) -> ToolResult:
        catalog = await self.wait_for_catalog()
        if name in RUN_TOOLS or name in COMPACT_TOOLS:
            refused = builtin_refusal(name, args, max_wait=self.settings.max_wait, compact=self.compact)
            if refused is not None:
                return refused
        if name in RUN_TOOLS:
            return await call_run_tool(name, args, self.runs, technique_for=self._technique_by_id,
                                       progress=progress, phase=phase)
        if name in COMPACT_TOOLS:
            return await call_compact_tool(name, args, catalog, self.runs, progress=progress, phase=phase,
                                           confirm=confirm, roots=roots)
        tool = catalog.get(name)
        if tool is None:
            return refusal(name, None, f"There is no tool named {name!r}.", code="unknown_tool",
                           next_step="List the tools again; the catalog may have changed.")
        return await self.runs.run_tool(tool, args, progress=progress, phase=phase, confirm=confirm, roots=roots)

    async def upload_files(self, files: Sequence[str], *, progress: ProgressCallback | None = None,
                           roots: RootsProvider | None = None) -> list[InputUpload]:
        """Upload local files (paths, `file://` URIs or `data:` URLs) as FLORA assets, exactly as media inputs are:
        the same allowed folders and checks, each distinct file once per workspace.

        Raises:
            UploadError: a file was refused (every refusal named; nothing sent), or an upload failed.
            APIError: FLORA failed or refused.
        """
        prepared = await self.media.prepare_files(files, lambda: self.runs.file_policy(roots))
        if isinstance(prepared, list):
            raise UploadError("; ".join(f"{problem.field}: {problem.message}" for problem in prepared), sent=False)
        with closing(prepared):
            reporter = None if progress is None else _upload_progress(progress)
            _, uploads = await self.media.upload(prepared, reporter)
        return uploads

    def _tool_name_for(self, result: ToolResult) -> str:
        """The technique's own tool name, which output files are named by (also for flora_get_run's results)."""
        catalog = self.loader.current
        tool = catalog.find(result.technique.technique_id) if catalog is not None and result.technique else None
        return tool.name if tool is not None else result.tool

    def _technique_by_id(self, technique_id: str | None) -> Technique | None:
        catalog = self.loader.current
        if technique_id is None or catalog is None:
            return None
        tool = catalog.find(technique_id)
        return tool.technique if tool else None


def _upload_progress(progress: ProgressCallback) -> Callable[[int, int, str], Awaitable[None]]:
    async def report(sent: int, total: int, message: str) -> None:
        await progress(round(100.0 * sent / max(total, 1), 2), message)

    return report
