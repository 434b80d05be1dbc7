"""What one caller may take from a hosted server: sessions per principal and in all, and FLORA's time for bad keys.

A principal is whoever a credential names (`Caller.principal`: a bearer token's hash, a FLORA key's account, or both;
an OAuth subject later). Without a cap one credential could open every session the server holds and lock everyone
else out until the idle timeout; so each request that would open a session first takes a `Reservation`:

- a principal at `max_per_principal` open sessions gets 429 `too_many_sessions`, naming the cap;
- a server at `max_sessions` in all gets 503 `server_full`.

A stateful streamable-HTTP session keeps its reservation until the SDK discards it (DELETE, idle timeout, a failed
opening request); an SSE session for as long as its stream is open; a request that opens no lasting session
(stateless mode, sessionless protocol versions) for as long as it runs. Without credentials (loopback only) every
client is the same principal, so only the server's cap applies.

`RefusalCache` remembers, for `REFUSAL_TTL` seconds and by a hash of the key (never the key), that FLORA refused a
key: a client retrying with a bad key costs FLORA one `GET /techniques` a minute, not one per request, so bad keys
cannot get the server rate-limited by FLORA.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from mcp.server import Server
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import JSONResponse, Response

from flora_mcp.api.errors import APIStatusError

__all__ = [
    "DEFAULT_MAX_SESSIONS",
    "DEFAULT_MAX_SESSIONS_PER_PRINCIPAL",
    "MAX_REFUSALS",
    "OPENING",
    "REFUSAL_TTL",
    "QuotaRefusal",
    "QuotaSessionManager",
    "RefusalCache",
    "Reservation",
    "SessionQuota",
]

DEFAULT_MAX_SESSIONS = 10_000
DEFAULT_MAX_SESSIONS_PER_PRINCIPAL = 100
REFUSAL_TTL = 60.0
"""Seconds a key FLORA refused is refused again without asking FLORA."""
MAX_REFUSALS = 4096
"""Refused keys remembered at once; the oldest go first."""
RETRY_AFTER = "5"


@dataclass(eq=False)
class Reservation:
    """One session slot a principal holds: taken before the session opens, bound to its id once it has one."""

    principal: str
    session_id: str | None = None
    released: bool = False


@dataclass(frozen=True)
class QuotaRefusal:
    """Why a new session is refused: 429 for a principal at its cap, 503 for a full server."""

    status_code: int
    error: str
    description: str

    def response(self) -> Response:
        """The JSON answer, with a Retry-After."""
        return JSONResponse({"error": self.error, "error_description": self.description},
                            status_code=self.status_code, headers={"Retry-After": RETRY_AFTER})


OPENING: ContextVar[Reservation | None] = ContextVar("flora_mcp_opening_session", default=None)
"""The reservation of the request being served, for the session manager to bind to the session it opens."""


class SessionQuota:
    """Open sessions, counted per principal and in all.

    Args:
        max_sessions: sessions open at once on this server (FLORA_MAX_SESSIONS).
        max_per_principal: sessions one principal may hold open at once (FLORA_MAX_SESSIONS_PER_PRINCIPAL).
        idle_timeout: seconds after which the SDK ends an idle session, for the refusal's advice.
    """

    def __init__(self, *, max_sessions: int = DEFAULT_MAX_SESSIONS,
                 max_per_principal: int = DEFAULT_MAX_SESSIONS_PER_PRINCIPAL,
                 idle_timeout: float | None = None) -> None:
        self.max_sessions = max_sessions
        self.max_per_principal = max_per_principal
        self.idle_timeout = idle_timeout
        self._held: Counter[str] = Counter()
        self._total = 0
        self._by_session: dict[str, Reservation] = {}

    def open_sessions(self, principal: str | None = None) -> int:
        """Slots held by `principal`, or by everyone."""
        return self._total if principal is None else self._held[principal]

    def reserve(self, principal: str, *, per_principal: bool = True) -> Reservation | QuotaRefusal:
        """Take a slot for a session `principal` is opening, or say why not.

        Args:
            principal: who is opening the session.
            per_principal: apply the per-principal cap (not without credentials, where everyone is one principal).
        """
        held = self._held[principal]
        if per_principal and held >= self.max_per_principal:
            wait = f"; idle ones end after {self.idle_timeout / 60:g} minutes" if self.idle_timeout else ""
            return QuotaRefusal(429, "too_many_sessions",
                                f"This credential already has {held} open MCP sessions, the most one principal may "
                                f"hold (FLORA_MAX_SESSIONS_PER_PRINCIPAL={self.max_per_principal}). Reuse or close "
                                f"one (DELETE with its Mcp-Session-Id){wait}.")
        if self._total >= self.max_sessions:
            return QuotaRefusal(503, "server_full",
                                f"This server holds {self._total} open MCP sessions, its limit "
                                f"(FLORA_MAX_SESSIONS={self.max_sessions}). Try again shortly.")
        self._held[principal] += 1
        self._total += 1
        return Reservation(principal)

    def bind(self, reservation: Reservation, session_id: str) -> None:
        """The reservation now belongs to this session, and lasts until `end_session`."""
        if not reservation.released:
            reservation.session_id = session_id
            self._by_session[session_id] = reservation

    def release(self, reservation: Reservation) -> None:
        """Give the slot back (once; later calls do nothing)."""
        if reservation.released:
            return
        reservation.released = True
        if reservation.session_id is not None:
            self._by_session.pop(reservation.session_id, None)
        self._total -= 1
        self._held[reservation.principal] -= 1
        if self._held[reservation.principal] <= 0:
            del self._held[reservation.principal]

    def end_session(self, session_id: str) -> None:
        """The session is gone: its slot is free."""
        reservation = self._by_session.pop(session_id, None)
        if reservation is not None:
            self.release(reservation)


class QuotaSessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager, with each stateful session holding the reservation of the request that opened it.

    The SDK admits a session (`_admit_session`, under its creation lock) and forgets it (`_discard_session`: DELETE,
    idle timeout, crash, a failed opening request) in one place each; the quota hooks exactly those two. The SDK's
    own cap is off: `SessionQuota` counts SSE sessions too.
    """

    def __init__(self, app: Server[Any], *, quota: SessionQuota, stateless: bool = False,
                 security_settings: TransportSecuritySettings | None = None) -> None:
        super().__init__(app=app, stateless=stateless, security_settings=security_settings, max_sessions=None)
        self.quota = quota
        quota.idle_timeout = self.session_idle_timeout

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        transport = super()._admit_session(requestor)
        reservation = OPENING.get()
        if transport is not None and transport.mcp_session_id is not None and reservation is not None:
            self.quota.bind(reservation, transport.mcp_session_id)
        return transport

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        self.quota.end_session(session_id)
        await super()._discard_session(session_id, transport)


class RefusalCache:
    """Keys FLORA refused lately, by account hash, with the error to answer again.

    Args:
        ttl: seconds a refusal is remembered.
        max_entries: refusals remembered at once.
        clock: monotonic seconds (tests move it).
    """

    def __init__(self, *, ttl: float = REFUSAL_TTL, max_entries: int = MAX_REFUSALS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, APIStatusError]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, account: str, error: APIStatusError) -> None:
        """FLORA refused the key of `account` (a hash, never the key) with `error`."""
        self._entries[account] = (self._clock() + self.ttl, error)
        self._entries.move_to_end(account)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def get(self, account: str) -> APIStatusError | None:
        """A fresh copy of the refusal of `account`, while it is remembered."""
        entry = self._entries.get(account)
        if entry is None:
            return None
        expires, error = entry
        if self._clock() >= expires:
            del self._entries[account]
            return None
        return type(error)(error.message, status_code=error.status_code, code=error.code, endpoint=error.endpoint,
                           request_id=error.request_id)
