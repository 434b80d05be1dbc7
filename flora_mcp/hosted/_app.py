"""The hosted Starlette app: `/mcp` (streamable HTTP), `/sse` + `/messages/` (legacy SSE), `/healthz` (alive),
`/readyz` (catalog loaded and, with FLORA_DATABASE_URL, the database answering), and
`/webhooks/flora` when FLORA's webhooks are on (`_webhooks.py`; its signature is its credential, so no guard).

Every MCP route goes through one guard, in this order: Host and Origin (the SDK's DNS-rebinding checks: 421, 403),
shutting down (503 for new sessions), credentials (401; 403 for an access token without the scope), a session slot
for a request that opens a session (429 for a principal at its cap, 503 for a full server: `flora_mcp.hosted._limits`),
then the principal's toolkit is leased and put in the ASGI scope, where the MCP server's resolver finds it again
through `ctx.request`. Health routes skip the guard, so probes need neither credentials nor a particular Host; so
does the OAuth protected resource metadata (RFC 9728), which clients read before they have a token.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
from mcp.server import NotificationOptions
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flora_mcp.api.errors import AuthenticationError, FloraError, PermissionDeniedError
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.hosted._auth import AuthFailure, AuthPolicy, Caller, unauthorized
from flora_mcp.hosted._limits import OPENING, QuotaRefusal, QuotaSessionManager, Reservation, SessionQuota
from flora_mcp.hosted._pool import ToolkitPool
from flora_mcp.hosted._webhooks import WEBHOOK_PATH, WebhookReceiver
from flora_mcp.server.handlers import create_server

__all__ = ["MCP_PATH", "MESSAGES_PATH", "SSE_PATH", "HostedApp", "InFlight"]

log = logging.getLogger("flora_mcp.hosted")

MCP_PATH = "/mcp"
SSE_PATH = "/sse"
MESSAGES_PATH = "/messages/"
TOOLKIT_KEY = "flora_mcp.core.toolkit"
READY_DATABASE_TIMEOUT = 2.0
"""Seconds /readyz waits for the shared database (FLORA_DATABASE_URL) before answering 503."""


class InFlight:
    """Server middleware that counts the MCP requests being handled, so a shutdown can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = anyio.Event()
        self._idle.set()

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.request_id is None:
            return await call_next(ctx)
        if self.count == 0:
            self._idle = anyio.Event()
        self.count += 1
        try:
            return await call_next(ctx)
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no request is being handled."""
        while self.count:
            await self._idle.wait()


class HostedApp:
    """The MCP server over both HTTP transports, behind the guard.

    Args:
        pool: hands out each caller's toolkit.
        policy: who may call.
        security: the Host/Origin allow-lists.
        stateless: stateless streamable HTTP (no session affinity needed between replicas).
        quota: how many sessions each principal and the whole server may hold; by default its defaults.
        webhooks: the receiver of FLORA's completion webhooks; None serves no webhook route.
    """

    def __init__(self, pool: ToolkitPool, policy: AuthPolicy, security: TransportSecuritySettings, *,
                 stateless: bool = False, quota: SessionQuota | None = None,
                 webhooks: WebhookReceiver | None = None) -> None:
        self.pool = pool
        self.policy = policy
        self.quota = quota or SessionQuota()
        self.security = security
        self.stateless = stateless
        self.draining = False
        self.in_flight = InFlight()
        keys = pool.settings.state_keys
        self.server = create_server(self._resolve, known_toolkit=lambda: pool.shared,
                                    state_keys=keys.get_secret_value() if keys else None)
        self.server.middleware.append(self.in_flight)
        self.sessions = QuotaSessionManager(app=self.server, stateless=stateless, security_settings=security,
                                            quota=self.quota)
        self.sse = SseServerTransport(MESSAGES_PATH, security_settings=security)
        self.checks = TransportSecurityMiddleware(security)
        metadata = policy.oauth.resource.metadata_routes(MCP_PATH) if policy.oauth is not None else []
        self.webhooks = webhooks
        hooks = [Route(WEBHOOK_PATH, webhooks.receive, methods=["POST"])] if webhooks is not None else []
        self.app = Starlette(
            routes=[
                *metadata,
                *hooks,
                Route("/healthz", self._healthz, methods=["GET"]),
                Route("/readyz", self._readyz, methods=["GET"]),
                Route(MCP_PATH, endpoint=_Guard(self, self.sessions.handle_request, "mcp")),
                Route(SSE_PATH, endpoint=_Guard(self, self._sse_session, "sse"), methods=["GET"]),
                Route(MESSAGES_PATH, endpoint=_Guard(self, self.sse.handle_post_message, "messages"),
                      methods=["POST"]),
            ],
            lifespan=self._lifespan,
        )

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with self.sessions.run():
            yield

    async def _resolve(self, ctx: ServerRequestContext[Any]) -> Toolkit:
        scope = getattr(ctx.request, "scope", None)
        toolkit = scope.get(TOOLKIT_KEY) if isinstance(scope, dict) else None
        if not isinstance(toolkit, Toolkit):
            raise RuntimeError("this request did not pass flora-mcp's guard")
        return toolkit

    async def _sse_session(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self.sse.connect_sse(scope, receive, send) as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options(
                NotificationOptions(tools_changed=True, resources_changed=True)))

    async def _healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _readyz(self, request: Request) -> Response:
        if self.draining:
            return JSONResponse({"status": "shutting_down"}, status_code=503)
        if not self.pool.ready:
            return JSONResponse({"status": "loading_catalog"}, status_code=503)
        if self.pool.journal.shared and not await self._database_answers():
            return JSONResponse({"status": "database_unavailable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def _database_answers(self) -> bool:
        """Whether the shared store answers a lookup now: a replica that cannot reach it takes no traffic."""
        try:
            with anyio.fail_after(READY_DATABASE_TIMEOUT):
                await self.pool.journal.get("", "")
        except Exception as exc:
            log.warning("readiness: the database does not answer: %s", " ".join(str(exc).split()) or type(exc))
            return False
        return True

    def opens_session(self, kind: str, request: Request) -> bool:
        """Whether this request would start a new MCP session (refused while shutting down)."""
        if kind == "sse":
            return True
        if kind == "mcp":
            return self.stateless or MCP_SESSION_ID_HEADER not in request.headers
        return False


class _Guard:
    """Host/Origin, shutdown, credentials and the caller's toolkit, in front of one MCP endpoint."""

    def __init__(self, hosted: HostedApp, app: ASGIApp, kind: str) -> None:
        self.hosted = hosted
        self.app = app
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hosted = self.hosted
        admitted = await self._admit(Request(scope, receive))
        if isinstance(admitted, Response):
            await admitted(scope, receive, send)
            return
        reservation: Reservation | None = None
        if hosted.opens_session(self.kind, Request(scope, receive)):
            taken = hosted.quota.reserve(admitted.principal, per_principal=hosted.policy.required)
            if isinstance(taken, QuotaRefusal):
                log.info("refused a new session: %s", taken.description)
                await taken.response()(scope, receive, send)
                return
            reservation = taken
        opening = OPENING.set(reservation)
        try:
            await self._serve(admitted, scope, receive, send)
        finally:
            OPENING.reset(opening)
            # Bound to a session, the slot lasts as long as the session; otherwise it ends with this request.
            if reservation is not None and reservation.session_id is None:
                hosted.quota.release(reservation)

    async def _serve(self, admitted: Caller, scope: Scope, receive: Receive, send: Send) -> None:
        hosted = self.hosted
        async with AsyncExitStack() as stack:
            try:
                toolkit = await stack.enter_async_context(hosted.pool.lease(admitted))
            except FloraError as exc:
                await _key_refused(exc)(scope, receive, send)
                return
            if hosted.policy.required:
                # The SDK's transports tie each session to the user that opened it.
                scope["user"] = admitted.as_user()
                scope["auth"] = AuthCredentials([])
            scope[TOOLKIT_KEY] = toolkit
            await _completing(self.app, scope, receive, send)

    async def _admit(self, request: Request) -> Caller | Response:
        hosted = self.hosted
        refusal = await hosted.checks.validate_request(request, is_post=False)
        if refusal is not None:
            return refusal
        if hosted.draining and hosted.opens_session(self.kind, request):
            return JSONResponse({"error": "shutting_down", "error_description": "This server is shutting down."},
                                status_code=503, headers={"Retry-After": "1", "Connection": "close"})
        caller = await hosted.policy.authenticate(request.headers)
        return hosted.policy.refuse(caller) if isinstance(caller, AuthFailure) else caller


async def _completing(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run `app`, then end its response if it left one open.

    sse-starlette cancels its streams on shutdown without their last body message; ending them here closes the
    connection cleanly instead of uvicorn logging an incomplete response.
    """
    started = completed = False

    async def watch(message: Message) -> None:
        nonlocal started, completed
        if message["type"] == "http.response.start":
            started = True
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            completed = True
        await send(message)

    try:
        await app(scope, receive, watch)
    finally:
        if started and not completed:
            with anyio.CancelScope(shield=True):
                await send({"type": "http.response.body", "body": b"", "more_body": False})


def _key_refused(exc: FloraError) -> Response:
    if isinstance(exc, AuthenticationError | PermissionDeniedError):
        return unauthorized(AuthFailure("FLORA refused this API key."))
    log.warning("could not load a caller's technique catalog: %s", exc.message)
    return JSONResponse({"error": "flora_unavailable",
                         "error_description": f"The FLORA technique catalog could not be loaded: {exc.message}"},
                        status_code=503, headers={"Retry-After": "5"})
