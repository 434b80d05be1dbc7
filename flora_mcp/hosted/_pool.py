"""The toolkits a hosted server hands out: one per principal, on the server's own FLORA key or on the user's, bounded.

Every principal (`flora_mcp.hosted._auth`) has a `Toolkit` of its own: its own journal account
(`principal_account`), so its own runs, resources, tasks, spend and budgets; when principals share a key, it resumes
only runs its account holds. Principals on the server's own key share that key's client and catalog (the shared
toolkit's): their toolkits cost no request to FLORA. With per-user keys each principal's toolkit has its own client
and catalog, loaded from the key on first use. All share one `Store`. Without credentials (loopback only) everyone
is `LOCAL`, served by the shared toolkit itself.

A toolkit is leased for the length of each HTTP request that uses it (an SSE stream holds its lease for the whole
session); the least recently used idle toolkits beyond `max_toolkits` are closed (their runs stay in the journal; a
FLORA_SESSION_BUDGET starts again, FLORA_PRINCIPAL_BUDGET, counted from the journal, does not). A key FLORA refused is
refused again from `RefusalCache` for a while, without asking FLORA.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskGroup
from pydantic import SecretStr

from flora_mcp.api.errors import AuthenticationError, PermissionDeniedError
from flora_mcp.config import Settings
from flora_mcp.core.completions import Completions
from flora_mcp.core.runs import account_id
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.hosted._auth import LOCAL, Caller
from flora_mcp.hosted._limits import RefusalCache
from flora_mcp.store import open_store

__all__ = ["DEFAULT_MAX_TOOLKITS", "ToolkitPool", "principal_account"]

DEFAULT_MAX_TOOLKITS = 256


def principal_account(key_account: str, principal: str) -> str:
    """The journal account of a principal's runs on one FLORA key: the key's account, then who ran them (audit)."""
    return key_account if principal == LOCAL else f"{key_account}/{principal}"


class _Entry:
    """One cached toolkit: its loading state and how many requests hold it."""

    def __init__(self, toolkit: Toolkit) -> None:
        self.toolkit = toolkit
        self.leases = 0
        self.loaded = anyio.Event()
        self.error: BaseException | None = None


class ToolkitPool:
    """Toolkits by principal.

    Args:
        settings: the server's settings; per-user toolkits copy them with the user's key.
        per_user_keys: each client's own FLORA key; otherwise the server's own key for everyone.
        max_toolkits: how many principals' toolkits stay open when idle.
        refusals: keys FLORA refused lately; by default a `RefusalCache` of its defaults.
        shares_keys: principals may share a FLORA key (`AuthPolicy.shares_keys`): each then resumes only the runs
            its journal account holds, never a run id FLORA alone knows, which may be another principal's.
        completions: FLORA's webhooks as this server receives them, shared by every toolkit; None polls alone.
    """

    def __init__(self, settings: Settings, *, per_user_keys: bool, max_toolkits: int = DEFAULT_MAX_TOOLKITS,
                 refusals: RefusalCache | None = None, shares_keys: bool = True,
                 completions: Completions | None = None) -> None:
        self.settings = settings
        self.completions = completions
        self.per_user_keys = per_user_keys
        self.shares_keys = shares_keys
        self.max_toolkits = max_toolkits
        self.refusals = refusals or RefusalCache()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._stopping = False
        self._loaders: TaskGroup | None = None
        self.journal = open_store(settings.store_location())
        self._journal_open = True
        # local_files=False everywhere: the server's disk is not the user's.
        self.shared: Toolkit | None = None if per_user_keys else Toolkit(settings, journal=self.journal,
                                                                          local_files=False, completions=completions)

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
    async def lease(self, caller: Caller) -> AsyncIterator[Toolkit]:
        """The toolkit of this caller's principal, held until the block ends.

        Raises:
            FloraError: the catalog could not be loaded (AuthenticationError for a key FLORA refuses, also when it
                refused it within the last `refusals.ttl` seconds, without asking again).
        """
        if self.shared is not None:
            if caller.flora_key is not None:
                raise RuntimeError("a per-user key reached a server without per-user keys")
            if caller.principal == LOCAL:
                yield self.shared
                return
            key_account, flora_key = self.shared.account, None
        elif caller.flora_key is None:
            raise RuntimeError("per-user mode needs the caller's FLORA key")
        else:
            key_account, flora_key = account_id(self.settings.base_url, caller.flora_key), caller.flora_key
        account = principal_account(key_account, caller.principal)
        entry = self._entries.get(account)
        if entry is None:
            refused = self.refusals.get(key_account)
            if refused is not None:
                raise refused
            entry = self._open(account, key_account, flora_key)
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

    def _open(self, account: str, key_account: str, flora_key: str | None) -> _Entry:
        if self._loaders is None:
            raise RuntimeError("ToolkitPool.running() is not entered")
        toolkit, load = self._principal_toolkit(account, flora_key)
        if self._stopping:
            toolkit.runs.stop_waiting()
        entry = _Entry(toolkit)
        self._entries[account] = entry

        async def loading() -> None:
            try:
                await load()
            except BaseException as exc:
                # A failed key is forgotten at once; one FLORA refused is refused again for a while without asking,
                # anything else (FLORA down, say) is tried again by the next request rather than meet a stale error.
                entry.error = exc
                if isinstance(exc, AuthenticationError | PermissionDeniedError) and flora_key is not None:
                    self.refusals.add(key_account, exc)
                if self._entries.get(account) is entry:
                    del self._entries[account]
                with anyio.CancelScope(shield=True):
                    await toolkit.aclose()
                if not isinstance(exc, Exception):
                    raise
            finally:
                entry.loaded.set()

        # The first request of a principal loads its catalog in its own task: a caller that gives up mid-way does
        # not leave the others waiting on an event nobody will set.
        self._loaders.start_soon(loading)
        return entry

    def _principal_toolkit(self, account: str, flora_key: str | None) -> tuple[Toolkit, Callable[[], Awaitable[None]]]:
        """A new toolkit for the principal's `account`, and how to load its catalog."""
        shared = self.shared
        if flora_key is None:
            assert shared is not None
            toolkit = Toolkit(self.settings, journal=self.journal, client=shared.client, account=account,
                              journal_only=self.shares_keys, local_files=False, completions=self.completions)

            async def share() -> None:
                toolkit.set_catalog(await shared.wait_for_catalog())

            return toolkit, share
        settings = self.settings.model_copy(update={"api_key": SecretStr(flora_key)})
        own = Toolkit(settings, journal=self.journal, account=account, journal_only=self.shares_keys,
                      local_files=False, completions=self.completions)

        async def load() -> None:
            await own.load_catalog()

        return own, load

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
        """Every open toolkit: the shared one first, then the principals'."""
        return ([self.shared] if self.shared is not None else []) + [e.toolkit for e in self._entries.values()]

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
        """Close every principal's toolkit, the shared one, then the journal."""
        entries, self._entries = list(self._entries.values()), OrderedDict()
        for entry in entries:
            await entry.toolkit.aclose()
        if self.shared is not None:
            await self.shared.aclose()
        if self._journal_open:
            self._journal_open = False
            await self.journal.aclose()
