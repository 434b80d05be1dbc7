"""`serve_sandbox`: run a sandbox with uvicorn on loopback inside the caller's event loop, and the `Sandbox` handle.

It installs no signal handlers and writes nothing to stdout, so a stdio MCP server can embed it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import uvicorn
from starlette.applications import Starlette

from flora_mcp._net import bind_listener
from flora_mcp.sandbox._app import create_app
from flora_mcp.sandbox._assets import Asset
from flora_mcp.sandbox._config import SandboxConfig
from flora_mcp.sandbox._faults import Faults, RecordedRequest
from flora_mcp.sandbox._middleware import install_log_filters
from flora_mcp.sandbox._runs import Run
from flora_mcp.sandbox._samples import SAMPLE_NAMES
from flora_mcp.sandbox._state import SandboxState
from flora_mcp.sandbox._webhooks import Delivery

__all__ = ["Sandbox", "serve_sandbox"]

STARTUP_TIMEOUT = 15.0
SHUTDOWN_TIMEOUT = 5.0


class _EmbeddedConfig(uvicorn.Config):
    """Leaves logging alone: uvicorn would otherwise reconfigure the process-wide `uvicorn.*` loggers."""

    def configure_logging(self) -> None:
        pass


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host and stops as soon as it is asked to."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.exit_requested = anyio.Event()

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self) -> None:
        self.should_exit = True
        self.exit_requested.set()

    async def main_loop(self) -> None:
        # uvicorn's own loop notices should_exit only every 0.1 s; tests start hundreds of sandboxes.
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with anyio.move_on_after(0.1):
                await self.exit_requested.wait()


@dataclass
class Sandbox:
    """A running sandbox: where it listens, its key, its state, and the test instruments."""

    config: SandboxConfig
    state: SandboxState
    app: Starlette
    origin: str
    """`http://127.0.0.1:PORT`"""

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/api/v1`"""
        return f"{self.origin}/api/v1"

    @property
    def api_key(self) -> str:
        """The first configured API key."""
        return next(iter(self.config.keys))

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.state.requests

    def requests_for(self, route: str) -> list[RecordedRequest]:
        """The recorded requests of one route name, in order."""
        return [record for record in self.state.requests if record.route == route]

    @property
    def runs(self) -> list[Run]:
        """Every run created, oldest first, whatever its key."""
        return list(self.state.runs.values())

    @property
    def assets(self) -> list[Asset]:
        """Every asset created, oldest first, whatever its key."""
        return list(self.state.assets.assets.values())

    def asset_file(self, asset_id: str) -> Path | None:
        """Where a ready asset's bytes are stored (what its URL serves); None before it is ready."""
        asset = self.state.assets.assets.get(asset_id)
        if asset is None or asset.path is None or self.state.files_dir is None:
            return None
        return self.state.files_dir / asset.path

    @property
    def faults(self) -> Faults:
        return self.state.faults

    @property
    def deliveries(self) -> list[Delivery]:
        """Every completion callback made (dropped ones too), in order, with the receiver's answers."""
        return self.state.webhooks.deliveries

    def sample_url(self, name: str) -> str:
        """The URL of a start-up sample image: street.png, portrait.png or logo.png."""
        if name not in SAMPLE_NAMES:
            raise ValueError(f"no sample {name!r}; samples are {', '.join(SAMPLE_NAMES)}")
        return f"{self.origin}/files/samples/{name}"

    def credits(self, api_key: str | None = None) -> float | None:
        """The remaining balance of a key (the first key by default); None when unlimited."""
        return self.state.credits[api_key or self.api_key]


@asynccontextmanager
async def serve_sandbox(config: SandboxConfig | None = None) -> AsyncIterator[Sandbox]:
    """Serve a sandbox on loopback for the duration of the `async with` block.

    Args:
        config: how the sandbox behaves; `SandboxConfig()` when None (port 0 picks a free port).

    Returns:
        An async context manager yielding the running `Sandbox`.
    """
    config = config or SandboxConfig()
    app = create_app(config)
    sock = bind_listener(config.host, config.port)
    port = sock.getsockname()[1]
    host = f"[{config.host}]" if ":" in config.host else config.host
    server = _EmbeddedServer(
        _EmbeddedConfig(
            app,
            host=config.host,
            port=port,
            log_config=None,
            lifespan="on",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=1,
        )
    )
    install_log_filters()
    stopped = anyio.Event()

    async def run_server() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            sock.close()
            stopped.set()

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(run_server)
        with anyio.fail_after(STARTUP_TIMEOUT):
            while not server.started:
                if stopped.is_set():
                    raise RuntimeError("the sandbox server stopped during start-up")
                await anyio.sleep(0.005)
        try:
            yield Sandbox(config, app.state.sandbox, app, f"http://{host}:{port}")
        finally:
            server.request_exit()
            with anyio.move_on_after(SHUTDOWN_TIMEOUT, shield=True):
                await stopped.wait()
            task_group.cancel_scope.cancel()
