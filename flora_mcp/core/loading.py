"""The catalog a toolkit serves, and where its loading stands: loaded, listed but not yet complete, or failed.

Loading lists every page of techniques first, then fetches the summary items' schemas. In compact mode (more than
`COMPACT_THRESHOLD` techniques, or FLORA_TOOLS_MODE=compact) tools/list needs none of those schemas, so its answer is
known as soon as the count is, and a server starting up may hold the schema requests back (`defer_schemas`) until a
call needs the catalog. A failed load is kept: every waiter gets it, raised from its cause.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

from flora_mcp._net import is_loopback_host
from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import FloraError
from flora_mcp.api.models import Technique
from flora_mcp.api.retry import RetryPolicy
from flora_mcp.config import Settings
from flora_mcp.core.builtin import compact_tools, run_tools
from flora_mcp.core.cache import CatalogCache, default_cache_dir
from flora_mcp.core.catalog import Catalog, load_techniques, technique_filter

__all__ = ["COMPACT_THRESHOLD", "CatalogLoader", "TechniqueSource", "catalog_cache_for", "flora_client",
           "techniques_for"]

log = logging.getLogger("flora_mcp.core.loading")

COMPACT_THRESHOLD = 40
"""In FLORA_TOOLS_MODE=auto, more techniques than this are offered as the compact trio."""


class TechniqueSource(Protocol):
    """Techniques loaded elsewhere for the first catalog (core/catalog_process.py: by a child process)."""

    async def techniques(self, on_listed: Callable[[list[Technique]], Awaitable[None]] | None = None
                         ) -> list[Technique] | None:
        """The techniques, `on_listed` awaited with the list items first; None when FLORA must be asked here."""
        ...


class CatalogLoader:
    """Loads, caches and serves one key's technique catalog, and the tool definitions made from it."""

    def __init__(self, client: FloraClient, settings: Settings, cache: CatalogCache | None) -> None:
        self.client = client
        self.settings = settings
        self.cache = cache
        self._catalog: Catalog | None = None
        self._ready = anyio.Event()  # set once there is a catalog, or the first load failed
        self._error: BaseException | None = None
        self._listed = anyio.Event()  # set once the number of techniques is known, or the catalog is ready, or failed
        self._listed_count: int | None = None
        self._schemas_gate: anyio.Event | None = None
        self._served: tuple[object, list[dict[str, Any]]] | None = None

    # Loading -----------------------------------------------------------------------------------------------------

    async def load(self, source: TechniqueSource | None = None) -> Catalog:
        """List every technique from FLORA, build the tools, and write the techniques to the catalog cache.

        With `source`, the techniques it has, unless it has none.
        """
        try:
            techniques = await source.techniques(self._on_listed) if source is not None else None
            if techniques is None:
                # In full mode every schema is needed: asked for page by page.
                techniques = await techniques_for(self.client, self.settings, self._on_listed,
                                                  prefetch=self.settings.tools_mode == "full")
        except BaseException as exc:
            if self._catalog is None:
                self._error = exc
                self._ready.set()
                self._listed.set()
            raise
        self.use(Catalog.from_techniques(techniques))
        await self._save(techniques)
        return self.catalog

    def load_cached(self) -> float | None:
        """Serve the cached catalog, if there is one; its age in seconds, or None when there is none."""
        cached = self.cache.load() if self.cache is not None else None
        if cached is None:
            return None
        self.use(Catalog.from_techniques(cached.techniques))
        return cached.age()

    async def refresh(self) -> bool:
        """Load the catalog from FLORA again; True when the tool definitions changed."""
        before = self.definitions() if self._catalog is not None else None
        await self.load()
        return before != self.definitions()

    def use(self, catalog: Catalog) -> None:
        """Serve this catalog from now on (a cached one at start-up, a refreshed one later)."""
        self._catalog = catalog
        self._error = None
        self._ready.set()
        self._listed.set()

    def defer_schemas(self, until: anyio.Event) -> None:
        """When tools/list needs no schema, fetch none before `until` is set or a call waits for the catalog."""
        self._schemas_gate = until

    async def _on_listed(self, listed: list[Technique]) -> None:
        if self._catalog is not None:
            return
        self._listed_count = len(listed)
        self._listed.set()
        gate = self._schemas_gate
        if gate is not None and self.compact_for(len(listed)) and any(t.is_summary for t in listed):
            await gate.wait()

    async def _save(self, techniques: list[Technique]) -> None:
        if self.cache is None:
            return
        try:
            await anyio.to_thread.run_sync(self.cache.save, techniques)
        except OSError as exc:
            log.warning("cannot write the catalog cache %s: %s", self.cache.path, exc)

    # Serving -----------------------------------------------------------------------------------------------------

    async def wait(self) -> Catalog:
        """The catalog, waiting for it to load if it is loading."""
        if self._catalog is None and self._schemas_gate is not None:
            self._schemas_gate.set()  # the schemas are needed now
        await self._ready.wait()
        if self._catalog is None:
            # Raised from the cause, by which the translator classifies it: FLORA unreachable is `connection_error`.
            raise FloraError(f"the technique catalog could not be loaded: {self._error}") from self._error
        return self._catalog

    @property
    def current(self) -> Catalog | None:
        """The catalog being served, or None before the first one."""
        return self._catalog

    @property
    def catalog(self) -> Catalog:
        """The catalog being served; FloraError before it is loaded."""
        if self._catalog is None:
            raise FloraError("the technique catalog is not loaded yet")
        return self._catalog

    def compact_for(self, count: int) -> bool:
        """Whether `count` techniques are offered as the compact trio rather than one tool each."""
        mode = self.settings.tools_mode
        return mode == "compact" or (mode == "auto" and count > COMPACT_THRESHOLD)

    def definitions(self) -> list[dict[str, Any]]:
        """Every tool of the loaded catalog as an MCP-shaped dict."""
        if self.compact_for(len(self.catalog)):
            return self._compact_definitions()
        return self.catalog.definitions() + run_tools(self.settings.max_wait)

    async def wait_for_definitions(self) -> list[dict[str, Any]]:
        """The tool definitions, as soon as they are known; the same list object until they change.

        In compact mode they do not depend on the techniques' schemas: they are known once FLORA has said how many
        techniques there are (at once with FLORA_TOOLS_MODE=compact), before every schema has been fetched.
        """
        if self._catalog is None and self.settings.tools_mode != "compact":
            await self._listed.wait()
        early = self._catalog is None and (self.settings.tools_mode == "compact" or (
            self._listed_count is not None and self.compact_for(self._listed_count)))
        key: object = "compact" if early else await self.wait()
        served = self._served
        if served is None or served[0] is not key:
            served = self._served = (key, self._compact_definitions() if early else self.definitions())
        return served[1]

    def _compact_definitions(self) -> list[dict[str, Any]]:
        return compact_tools() + run_tools(self.settings.max_wait, full_schemas=False)


async def techniques_for(client: FloraClient, settings: Settings,
                         on_listed: Callable[[list[Technique]], Awaitable[None]] | None, *,
                         prefetch: bool) -> list[Technique]:
    """Every technique these settings ask FLORA for (FLORA_QUERY, FLORA_TECHNIQUES), with its schema."""
    return await load_techniques(client, query=settings.query, concurrency=settings.catalog_concurrency,
                                 accept=technique_filter(settings.techniques), on_listed=on_listed,
                                 prefetch=prefetch)


def flora_client(settings: Settings, key: str | None = None) -> FloraClient:
    """The FLORA client these settings describe, with `key` (by default the settings' own, required)."""
    return FloraClient(api_key=key if key is not None else settings.require_api_key(), base_url=settings.base_url,
                       timeout=settings.request_timeout, retry=RetryPolicy(max_retries=settings.max_retries))


def catalog_cache_for(settings: Settings, key: str | None) -> CatalogCache | None:
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
