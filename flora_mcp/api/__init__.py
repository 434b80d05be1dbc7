"""The FLORA REST client: one httpx.AsyncClient, typed models, one exception tree, one retry policy, and uploads of
files into FLORA's assets (`Assets`)."""

from __future__ import annotations

from flora_mcp.api.assets import Assets
from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import (
    APIConnectionError,
    APIError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    FloraError,
    IdempotencyError,
    UnsafeURLError,
    UploadError,
)
from flora_mcp.api.models import Asset, Run, RunOutput, Technique, TechniqueIO, Workspace
from flora_mcp.api.retry import RetryPolicy

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "Asset",
    "Assets",
    "FloraClient",
    "FloraError",
    "IdempotencyError",
    "RetryPolicy",
    "Run",
    "RunOutput",
    "Technique",
    "TechniqueIO",
    "UnsafeURLError",
    "UploadError",
    "Workspace",
]
