"""`create_app`: the Starlette application of a sandbox, with its routes, error handling and lifespan.

The lifespan owns a temporary directory, removed on exit, with two folders (`files`: samples, run outputs and ready
assets, served at `/files/`; `bucket`: uploads not yet judged, never served) and the task group in which runs and
uploads do their work; an app that is not started through its lifespan cannot run techniques or take assets.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flora_mcp.sandbox import _asset_routes, _bucket, _routes, _run_routes
from flora_mcp.sandbox._catalog import Catalog
from flora_mcp.sandbox._config import SandboxConfig
from flora_mcp.sandbox._control import control_routes
from flora_mcp.sandbox._errors import SandboxError, code_for_status, error_response
from flora_mcp.sandbox._middleware import SandboxMiddleware
from flora_mcp.sandbox._samples import write_samples
from flora_mcp.sandbox._state import SandboxState
from flora_mcp.sandbox._techniques import builtin_techniques, synthetic_techniques

__all__ = ["create_app"]

API = "/api/v1"


async def _sandbox_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SandboxError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(SandboxError(exc.status_code, code_for_status(exc.status_code)))


def create_app(config: SandboxConfig | None = None) -> Starlette:
    """A sandbox as an ASGI app; its `SandboxState` is `app.state.sandbox`.

    Args:
        config: how the sandbox behaves; the defaults when None.

    Returns:
        The Starlette app. Serve it with its lifespan on (as `serve_sandbox` does) so runs can execute.
    """
    config = config or SandboxConfig()
    catalog = Catalog([*builtin_techniques(), *synthetic_techniques(config.extra_techniques)])
    state = SandboxState(config, catalog)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        with tempfile.TemporaryDirectory(prefix="flora-sandbox-") as directory:
            files_dir = Path(directory) / "files"
            bucket_dir = Path(directory) / "bucket"
            bucket_dir.mkdir()
            await anyio.to_thread.run_sync(write_samples, files_dir / "samples")
            state.files_dir = files_dir
            state.assets.bucket_dir = bucket_dir
            try:
                async with anyio.create_task_group() as task_group:
                    state.task_group = task_group
                    yield
                    task_group.cancel_scope.cancel()
            finally:
                state.task_group = None
                state.files_dir = None
                state.assets.bucket_dir = None

    routes = [
        Route(f"{API}/techniques", _routes.list_techniques, methods=["GET"]),
        Route(f"{API}/techniques/{{technique}}", _routes.get_technique, methods=["GET"]),
        Route(f"{API}/techniques/{{technique}}/runs", _run_routes.create_technique_run, methods=["POST"]),
        Route(f"{API}/techniques/{{technique}}/runs/{{run_id}}", _run_routes.get_technique_run, methods=["GET"]),
        Route(f"{API}/runs/technique", _run_routes.create_run, methods=["POST"]),
        Route(f"{API}/runs/{{run_id}}", _run_routes.get_run, methods=["GET"]),
        Route(f"{API}/workspaces", _routes.list_workspaces, methods=["GET"]),
        Route(f"{API}/technique-runs", _run_routes.list_technique_runs, methods=["GET"]),
        Route(f"{API}/assets", _asset_routes.create_asset, methods=["POST"]),
        Route(f"{API}/assets", _asset_routes.list_assets, methods=["GET"]),
        Route(f"{API}/assets/{{asset_id}}", _asset_routes.get_asset, methods=["GET"]),
        Route(f"{API}/assets/{{asset_id}}/complete", _asset_routes.complete_asset, methods=["POST"]),
        Route(f"{API}/assets/{{asset_id}}/retry", _asset_routes.retry_asset, methods=["POST"]),
        Route("/bucket", _bucket.bucket_post, methods=["POST"]),
        Route("/bucket/{key:path}", _bucket.bucket_put, methods=["PUT"]),
        Route("/files/{path:path}", _routes.files, methods=["GET", "HEAD"]),
    ]
    if config.enable_control:
        routes.extend(control_routes())
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SandboxMiddleware, state=state)],
        exception_handlers={SandboxError: _sandbox_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.sandbox = state
    return app
