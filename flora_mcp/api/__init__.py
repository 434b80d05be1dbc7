"""The FLORA REST client: one httpx.AsyncClient, typed models, one exception tree, one retry policy."""

from __future__ import annotations

from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import (
    APIConnectionError,
    APIError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    FloraError,
    IdempotencyError,
)
from flora_mcp.api.models import Run, RunOutput, Technique, TechniqueIO
from flora_mcp.api.retry import RetryPolicy

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "FloraClient",
    "FloraError",
    "IdempotencyError",
    "RetryPolicy",
    "Run",
    "RunOutput",
    "Technique",
    "TechniqueIO",
]
