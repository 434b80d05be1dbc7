"""The toolkits a hosted server hands out: the server's own, or one per user's FLORA key, cached and bounded.

With per-user keys each key gets its own `Toolkit` (its own HTTP client, catalog and run manager) on first use, so a
user's catalog and runs come from their key alone; all share one `Journal`, whose rows are scoped by account. A
toolkit is leased for the length of each HTTP request that uses it (an SSE stream holds its lease for the whole
session); the least recently used idle toolkits beyond `max_toolkits` are closed. A key FLORA refused is refused
again from `RefusalCache` for a while, without asking FLORA.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskGroup
from pydantic import SecretStr

from flora_mcp.api.errors import AuthenticationError, PermissionDeniedError
from flora_mcp.config import Settings
from flora_mcp.core.journal import Journal
from flora_mcp.core.runs import account_id
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.hosted._limits import RefusalCache

__all__ = ["DEFAULT_MAX_TOOLKITS", "ToolkitPool"]

DEFAULT_MAX_TOOLKITS = 256


class _Entry:
    """One cached toolkit: its loading state and how many requests hold it."""

    def __init__(self, toolkit: Toolkit) -> None:
        self.toolkit = toolkit
        self.leases = 0
        self.loaded = anyio.Event()
        self.error: BaseException | None = None


class ToolkitPool:
    """Toolkits by FLORA key.

    Args:
        settings: the server's settings; per-user toolkits copy them with the user's key.
        per_user_keys: one toolkit per client key; otherwise the server's own toolkit for everyone.
        max_toolkits: how many per-user toolkits stay open when idle.
        refusals: keys FLORA refused lately; by default a `RefusalCache` of its defaults.
    """

    def __init__(self, settings: Settings, *, per_user_keys: bool, max_toolkits: int = DEFAULT_MAX_TOOLKITS,
                 refusals: RefusalCache | None = None) -> None:
        self.settings = settings
        self.per_user_keys = per_user_keys
        self.max_toolkits = max_toolkits
        self.refusals = refusals or RefusalCache()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._stopping = False
        self._loaders: TaskGroup | None = None
        self.journal: Journal | None = None
        self.shared: Toolkit | None = None
        if per_user_keys:
            self.journal = Journal(settings.journal_path())
        else:
            self.shared = Toolkit(settings, local_files=False)  # the server's disk is not the user's

    @property
    def ready(self) -> bool:
        """Whether requests can be served: the shared catalog is loaded (always, with per-user keys)."""
        if self.shared is None:
            return True
        try:
            self.shared.catalog  # noqa: B018 - raises until the catalog is loaded
        except Exception:
            return False
        return True

    def __len__(self) -> int:
        return len(self._entries)

    async def load_shared(self) -> int:
        """Load the shared toolkit's catalog; the number of techniques (0 with per-user keys)."""
        if self.shared is None:
            return 0
        return len(await self.shared.load_catalog())

    @asynccontextmanager
    async def lease(self, flora_key: str | None) -> AsyncIterator[Toolkit]:
        """The toolkit for this key (None: the server's own), held until the block ends.

        Raises:
            FloraError: the key's catalog could not be loaded (AuthenticationError for a key FLORA refuses, also
                when it refused it within the last `refusals.ttl` seconds, without asking again).
        """
        if self.shared is not None or flora_key is None:
            if self.shared is None:
                raise RuntimeError("per-user mode needs the caller's FLORA key")
            yield self.shared
            return
        account = account_id(self.settings.base_url, flora_key)
        entry = self._entries.get(account)
        if entry is None:
            refused = self.refusals.get(account)
            if refused is not None:
                raise refused
            entry = self._open(account, flora_key)
        else:
            self._entries.move_to_end(account)
        entry.leases += 1
        try:
            await entry.loaded.wait()
            if entry.error is not None:
                raise entry.error
            yield entry.toolkit
        finally:
            entry.leases -= 1
            await self._evict()

    def _open(self, account: str, flora_key: str) -> _Entry:
        if self._loaders is None:
            raise RuntimeError("ToolkitPool.running() is not entered")
        settings = self.settings.model_copy(update={"api_key": SecretStr(flora_key)})
        toolkit = Toolkit(settings, journal=self.journal, local_files=False)
        if self._stopping:
            toolkit.runs.stop_waiting()
        entry = _Entry(toolkit)
        self._entries[account] = entry

        async def load() -> None:
            try:
                await toolkit.load_catalog()
            except BaseException as exc:
                # A failed key is forgotten at once; one FLORA refused is refused again for a while without asking,
                # anything else (FLORA down, say) is tried again by the next request rather than meet a stale error.
                entry.error = exc
                if isinstance(exc, AuthenticationError | PermissionDeniedError):
                    self.refusals.add(account, exc)
                if self._entries.get(account) is entry:
                    del self._entries[account]
                with anyio.CancelScope(shield=True):
                    await toolkit.aclose()
                if not isinstance(exc, Exception):
                    raise
            finally:
                entry.loaded.set()

        # The first request of a key loads its catalog in its own task: a caller that gives up mid-way does not
        # leave the others waiting on an event nobody will set.
        self._loaders.start_soon(load)
        return entry

    async def _evict(self) -> None:
        idle = [a for a, e in self._entries.items() if e.leases == 0 and e.loaded.is_set()]
        while len(self._entries) > self.max_toolkits and idle:
            entry = self._entries.pop(idle.pop(0))
            with anyio.CancelScope(shield=True):
                await entry.toolkit.aclose()

    def stop_waiting(self) -> None:
        """Every toolkit's waits end now (and later ones at once): in-flight calls return their run ids."""
        self._stopping = True
        for toolkit in self.toolkits():
            toolkit.runs.stop_waiting()

    def toolkits(self) -> list[Toolkit]:
        """Every open toolkit."""
        return [self.shared] if self.shared is not None else [e.toolkit for e in self._entries.values()]

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ToolkitPool]:
        """Own the loader tasks for the server's lifetime; close every toolkit and the journal at the end."""
        try:
            async with anyio.create_task_group() as tg:
                self._loaders = tg
                yield self
                tg.cancel_scope.cancel()
        finally:
            self._loaders = None
            with anyio.CancelScope(shield=True):
                await self.aclose()

    async def aclose(self) -> None:
        """Close every toolkit, then the shared journal."""
        entries, self._entries = list(self._entries.values()), OrderedDict()
        for entry in entries:
            await entry.toolkit.aclose()
        if self.shared is not None:
            await self.shared.aclose()
        if self.journal is not None:
            self.journal.close()
            self.journal = None
