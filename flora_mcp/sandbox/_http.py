"""Helpers shared by the route handlers: state lookup, authentication, origin, JSON bodies and query numbers."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from flora_mcp.sandbox._config import Account
from flora_mcp.sandbox._errors import FieldError, SandboxError
from flora_mcp.sandbox._state import SandboxState

__all__ = ["authenticate", "idempotency_key_of", "origin_of", "query_limit", "read_json_object", "state_of"]


def state_of(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


def origin_of(request: Request) -> str:
    """Scheme, host and mount prefix the client used, so URLs we hand out point back at us."""
    return str(request.base_url).rstrip("/")


def authenticate(request: Request) -> tuple[str, Account]:
    """The caller's API key and account; 401 for a missing or unknown key, 429 when over its rate."""
    state = state_of(request)
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    account = state.account(key.strip()) if scheme.lower() == "bearer" else None
    if account is None:
        raise SandboxError(401, "unauthorized")
    state.check_rate(key.strip())
    return key.strip(), account


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; 400 `invalid_json` when it is not JSON, 422 when not an object."""
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SandboxError(400, "invalid_json", f"Request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise SandboxError.validation([FieldError("body", "Must be a JSON object")])
    return body


def idempotency_key_of(request: Request, body: dict[str, Any]) -> str | None:
    """The key from the `Idempotency-Key` header or the `idempotency_key` field; they must agree when both are sent."""
    header = request.headers.get("idempotency-key")
    field = body.get("idempotency_key")
    if field is not None and (not isinstance(field, str) or not field):
        raise SandboxError.validation([FieldError("idempotency_key", "Must be a non-empty string")])
    if header is not None and field is not None and header != field:
        raise SandboxError.validation([FieldError("idempotency_key", "Differs from the Idempotency-Key header")])
    return header or field


def query_limit(request: Request, default: int, maximum: int) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if limit < 1:
        raise SandboxError.validation([FieldError("limit", "Must be a positive integer")], status=400)
    return min(limit, maximum)
