"""A FLORA-compatible API server on loopback that really runs techniques locally.

Used by tests, benchmarks and `flora-mcp --sandbox`; see README.md in this folder for the routes, techniques and
fault-injection API. Data flows: request -> `SandboxMiddleware` (request id, log, latency, faults) -> routes
(`_routes`, `_run_routes`, `_asset_routes`, `_bucket`) -> `SandboxState` (credits, idempotency, runs, assets) ->
`execute_run` -> technique work (`_imaging`, `_texts`) -> files under the temporary files directory, served at
`/files/`.
"""

from __future__ import annotations

from flora_mcp.sandbox._app import create_app
from flora_mcp.sandbox._assets import Asset
from flora_mcp.sandbox._catalog import Catalog, Port, Product, Technique, TechniqueFailure
from flora_mcp.sandbox._config import DEFAULT_SANDBOX_KEY, DEFAULT_WEBHOOK_SECRET, Account, SandboxConfig
from flora_mcp.sandbox._faults import (
    ROUTE_NAMES,
    WEBHOOK_ROUTE,
    Fault,
    FaultKind,
    Faults,
    FaultWhen,
    RecordedRequest,
)
from flora_mcp.sandbox._runs import Run, RunOutput
from flora_mcp.sandbox._samples import SAMPLE_NAMES
from flora_mcp.sandbox._server import Sandbox, serve_sandbox
from flora_mcp.sandbox._state import SandboxState
from flora_mcp.sandbox._webhooks import Delivery, sign_webhook

__all__ = [
    "DEFAULT_SANDBOX_KEY",
    "DEFAULT_WEBHOOK_SECRET",
    "ROUTE_NAMES",
    "SAMPLE_NAMES",
    "WEBHOOK_ROUTE",
    "Account",
    "Asset",
    "Catalog",
    "Delivery",
    "Fault",
    "FaultKind",
    "FaultWhen",
    "Faults",
    "Port",
    "Product",
    "RecordedRequest",
    "Run",
    "RunOutput",
    "Sandbox",
    "SandboxConfig",
    "SandboxState",
    "Technique",
    "TechniqueFailure",
    "create_app",
    "serve_sandbox",
    "sign_webhook",
]
