"""Serving the hosted app with uvicorn: refuse an open server off loopback, load the catalog, drain on SIGTERM.

Shutdown (SIGTERM or Ctrl-C): `/readyz` turns 503 and new sessions get 503 (existing ones carry on); every
in-flight tool call stops waiting for its run and returns it as `running` with its run id (resumable with
flora_get_run on any replica), for at most DRAIN_TIMEOUT seconds; then open streams end and uvicorn stops. A second
Ctrl-C stops without waiting.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import uvicorn
from anyio.abc import TaskGroup
from sse_starlette.sse import AppStatus

from flora_mcp._net import bind_listener as bind
from flora_mcp.api.errors import FloraError
from flora_mcp.config import ConfigurationError, Settings
from flora_mcp.core.completions import Completions
from flora_mcp.core.startup import StartupError, catalog_failure
from flora_mcp.hosted._app import MCP_PATH, SSE_PATH, HostedApp
from flora_mcp.hosted._auth import AuthPolicy
from flora_mcp.hosted._bus import PostgresBus
from flora_mcp.hosted._limits import SessionQuota
from flora_mcp.hosted._oauth import OAuthResource, TokenChecker, resource_url
from flora_mcp.hosted._options import HostedOptions, is_loopback, transport_security
from flora_mcp.hosted._pool import ToolkitPool
from flora_mcp.hosted._webhooks import WebhookReceiver, webhook_url
from flora_mcp.logs import add_secret
from flora_mcp.server.heap import freeze_heap

__all__ = ["DRAIN_TIMEOUT", "HostedServer", "bind", "hosted_policy", "local_url", "oauth_resource", "serve_http"]

log = logging.getLogger("flora_mcp.hosted")

DRAIN_TIMEOUT = 10.0
"""Longest a shutdown waits for in-flight calls; they return within a poll once told to stop waiting."""
FLUSH_DELAY = 0.3
"""After the last call returned: time for its result to be written to its stream before streams are closed."""
STREAM_GRACE = 3.0
"""uvicorn's wait for connections to close once streams were told to end."""


async def serve_http(settings: Settings, args: argparse.Namespace) -> None:
    """Serve streamable HTTP at /mcp and legacy SSE at /sse until SIGTERM or Ctrl-C.

    Raises:
        StartupError: auth is missing off loopback, the OAuth settings cannot work, the port cannot be bound, or the
            catalog cannot be loaded.
    """
    options = HostedOptions.from_args(args)
    try:
        static = AuthPolicy.from_settings(settings, per_user_keys=options.per_user_keys)
        if settings.oauth_issuer:
            oauth_resource(settings, options, options.port)  # its problems are told before binding
    except ConfigurationError as exc:
        raise StartupError(exc.message) from None
    if not is_loopback(options.host) and not (static.required or settings.oauth_issuer):
        raise StartupError(
            f"refusing to serve on {options.host} without auth: anyone who can reach it could spend your FLORA "
            "credits. Set FLORA_MCP_TOKENS (comma-separated bearer tokens) or FLORA_OAUTH_ISSUER, or pass "
            "--per-user-keys, or bind --host 127.0.0.1.")
    if not options.per_user_keys:
        try:
            settings.require_api_key()  # the server's own key serves every client
        except ConfigurationError as exc:
            raise StartupError(exc.message) from None
    try:
        sock = bind(options.host, options.port)
    except OSError as exc:
        raise StartupError(f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}") from None
    try:
        policy = hosted_policy(settings, options, sock.getsockname()[1])
        server = HostedServer(settings, options, policy, sock)
    except (FloraError, ConfigurationError) as exc:
        sock.close()
        raise StartupError(exc.message) from None
    server.freeze_heap = True  # the process is the server's: what lives on can be set aside (server/heap.py)
    await server.serve(handle_signals=True)


def hosted_policy(settings: Settings, options: HostedOptions, port: int) -> AuthPolicy:
    """Who may call a server on `port`: FLORA_MCP_TOKENS, per-user keys, and OAuth when FLORA_OAUTH_ISSUER is set.

    Raises:
        ConfigurationError: the OAuth settings cannot work.
    """
    oauth = TokenChecker(oauth_resource(settings, options, port)) if settings.oauth_issuer else None
    return AuthPolicy.from_settings(settings, per_user_keys=options.per_user_keys, oauth=oauth)


def oauth_resource(settings: Settings, options: HostedOptions, port: int) -> OAuthResource:
    """The OAuth resource server of FLORA_OAUTH_*: the resource is FLORA_PUBLIC_URL, else (on loopback) our URL.

    Raises:
        ConfigurationError: FLORA_PUBLIC_URL is missing off loopback, or the issuer or scopes cannot work.
    """
    if settings.public_url:
        resource = resource_url(settings.public_url, MCP_PATH)
    elif is_loopback(options.host):
        resource = f"{local_url(options.host, port)}{MCP_PATH}"
    else:
        raise ConfigurationError(
            "FLORA_PUBLIC_URL is required with FLORA_OAUTH_ISSUER off loopback: it is the resource tokens are "
            "issued for (https://flora.example.com/mcp).")
    return OAuthResource.from_settings(settings, resource=resource)


def local_url(host: str, port: int) -> str:
    """`http://HOST:PORT` as a client on this machine reaches a server bound to `host`."""
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    host = "[::1]" if host == "::" else (f"[{host}]" if ":" in host else host)
    return f"http://{host}:{port}"


def _webhooks(settings: Settings) -> tuple[Completions | None, WebhookReceiver | None]:
    """FLORA's webhooks, on when FLORA_PUBLIC_URL (where FLORA calls back) and FLORA_WEBHOOK_SECRET are both set."""
    secrets = settings.webhook_secret_values()
    if not settings.public_url or not secrets:
        return None, None
    for secret in secrets:
        add_secret(secret)
    completions = Completions(webhook_url(settings.public_url))
    return completions, WebhookReceiver(secrets, completions)


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: flora-mcp drains first, then asks it to stop."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HostedServer:
    """One hosted flora-mcp on a bound socket: the app, its toolkits, uvicorn, and the shutdown sequence.

    Args:
        settings: FLORA settings (the server's own key unless per-user keys).
        options: the serving flags.
        policy: who may call.
        sock: a listening socket from `bind`.
    """

    def __init__(self, settings: Settings, options: HostedOptions, policy: AuthPolicy, sock: socket.socket) -> None:
        self.settings = settings
        self.options = options
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.completions, receiver = _webhooks(settings)
        url = settings.database_url.get_secret_value() if settings.database_url else ""
        self.bus = PostgresBus(url, self.completions) if self.completions is not None and url else None
        """Webhooks across replicas (FLORA_DATABASE_URL): LISTEN/NOTIFY; None: this process wakes its own calls."""
        self.pool = ToolkitPool(settings, per_user_keys=options.per_user_keys, shares_keys=policy.shares_keys,
                                completions=self.completions)
        quota = SessionQuota(max_sessions=settings.max_sessions,
                             max_per_principal=settings.max_sessions_per_principal)
        self.hosted = HostedApp(self.pool, policy, transport_security(options, self.port, settings.public_url),
                                stateless=options.stateless, quota=quota, webhooks=receiver)
        self.uvicorn = _Uvicorn(uvicorn.Config(
            self.hosted.app, log_config=None, access_log=False, lifespan="on", http="h11", ws="none",
            timeout_graceful_shutdown=int(STREAM_GRACE)))
        self.started = anyio.Event()
        self.freeze_heap = False
        """Set what lives on aside from garbage collection once started (server/heap.py): when the process is ours."""
        self.failure: StartupError | None = None
        self._ended_streams = False
        self._shutting_down = False
        self._tasks: TaskGroup | None = None

    @property
    def url(self) -> str:
        """`http://HOST:PORT` as a client on this machine reaches it."""
        return local_url(self.options.host, self.port)

    async def serve(self, *, handle_signals: bool = False) -> None:
        """Serve until `shutdown()` (or a signal, when `handle_signals`) has drained and stopped the server.

        Raises:
            StartupError: the store (FLORA_DATABASE_URL) cannot be opened, or the server's own catalog could not be
                loaded.
        """
        try:
            await self.pool.journal.open()  # a shared database is reached and migrated before anything is served
        except FloraError as exc:
            self.sock.close()
            raise StartupError(exc.message) from None
        try:
            async with self.pool.running(), anyio.create_task_group() as tg:
                self._tasks = tg
                if handle_signals:
                    tg.start_soon(self._watch_signals)
                tg.start_soon(self._announce)
                if self.bus is not None:
                    tg.start_soon(self.bus.listen)
                await self.uvicorn.serve(sockets=[self.sock])
                tg.cancel_scope.cancel()
        finally:
            self._tasks = None
            self.sock.close()
            if self.hosted.policy.oauth is not None:
                with anyio.CancelScope(shield=True):
                    await self.hosted.policy.oauth.aclose()
            if self.bus is not None:
                with anyio.CancelScope(shield=True):
                    await self.bus.aclose()
            if self._ended_streams:
                # sse-starlette's flag is process-wide: leave it as found for any later server in this process.
                AppStatus.should_exit = False
        if self.failure is not None:
            raise self.failure

    async def _announce(self) -> None:
        while not self.uvicorn.started:
            await anyio.sleep(0.01)
        self.started.set()
        where = f"{self.url}{MCP_PATH}" if self.options.transport != "sse" else f"{self.url}{SSE_PATH}"
        mode = "stateless streamable HTTP" if self.options.stateless else "streamable HTTP"
        log.info("flora-mcp listening on %s (%s at %s, legacy SSE at %s; auth: %s)", where, mode, MCP_PATH,
                 SSE_PATH, self.hosted.policy.mode)
        if self.completions is not None:
            log.info("runs complete on FLORA's webhooks at %s (polling every %.0f s as a safety net; %s)",
                     self.completions.callback_url, self.settings.webhook_poll_interval,
                     "announced to every replica through the database" if self.bus else "this process only")
        elif self.settings.public_url:
            log.info("FLORA_WEBHOOK_SECRET is not set: runs are polled, with no webhook")
        try:
            count = await self.pool.load_shared()
        except Exception as exc:
            self.failure = catalog_failure(self.settings, exc)
            self.uvicorn.should_exit = True
            return
        if self.pool.shared is not None:
            log.info("serving %d FLORA techniques; ready", count)
        if self.freeze_heap:
            freeze_heap()  # started, and the shared catalog (if any) loaded: see server/heap.py

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if not self._shutting_down and self._tasks is not None:
                    log.info("%s: shutting down gracefully", name)
                    self._tasks.start_soon(self.shutdown)
                elif signum == signal.SIGINT:
                    # Ctrl-C twice means now; a repeated SIGTERM (some supervisors signal the whole group) does not.
                    log.warning("%s again: stopping without waiting for calls in flight", name)
                    self.stop_now()

    async def shutdown(self) -> None:
        """Stop taking sessions, let in-flight calls return their run ids, end the streams, stop uvicorn."""
        if self._shutting_down:
            return
        self._shutting_down = True
        # The socket stays open while draining: a load balancer may still send a request or two before it sees
        # /readyz fail, and those get a clear 503 rather than a refused connection.
        self.hosted.draining = True
        self.pool.stop_waiting()
        in_flight = self.hosted.in_flight
        if in_flight.count:
            log.info("waiting up to %.0f s for %d request(s) in flight", DRAIN_TIMEOUT, in_flight.count)
            with anyio.move_on_after(DRAIN_TIMEOUT):
                await in_flight.wait_idle()
            await anyio.sleep(FLUSH_DELAY)
        self.stop_now()

    def stop_now(self) -> None:
        """End every open stream and stop uvicorn, without waiting for calls in flight (their runs stay in FLORA
        and in the journal)."""
        # sse-starlette ends its streams (SSE sessions, open GET streams) when this is set; uvicorn would otherwise
        # wait out its whole grace period for them.
        self.hosted.draining = True
        self._ended_streams = True
        AppStatus.should_exit = True
        self.uvicorn.should_exit = True
