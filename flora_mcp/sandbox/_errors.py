"""FLORA's error envelope: `{"error": {"code", "message", "fields"?}}`, and the exception that carries it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse

__all__ = ["FieldError", "SandboxError", "code_for_status", "error_body", "error_response"]

_CODES_BY_STATUS = {
    400: "input_validation_error",
    401: "unauthorized",
    402: "insufficient_credits",
    403: "forbidden",
    404: "not_found",
    409: "idempotency_duplicate",
    422: "input_validation_error",
    429: "rate_limited",
}

_MESSAGES_BY_CODE = {
    "invalid_json": "Request body is not valid JSON.",
    "input_validation_error": "Invalid input.",
    "unauthorized": "Invalid API key.",
    "insufficient_credits": "Insufficient credits.",
    "forbidden": "Forbidden.",
    "not_found": "Not found.",
    "idempotency_duplicate": "Duplicate idempotency key.",
    "idempotency_conflict": "Idempotency key was reused with a different request body.",
    "rate_limited": "Rate limit exceeded.",
    "unknown_error": "An unknown error occurred.",
}


def code_for_status(status: int) -> str:
    """The error code FLORA most likely sends with an HTTP status."""
    return _CODES_BY_STATUS.get(status, "unknown_error")


@dataclass(frozen=True)
class FieldError:
    """One invalid field of a request body."""

    field: str
    message: str


@dataclass
class SandboxError(Exception):
    """An error answered with FLORA's envelope."""

    status: int
    code: str
    message: str | None = None
    fields: list[FieldError] = field(default_factory=list)
    retry_after: int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.code)

    @classmethod
    def validation(cls, fields: list[FieldError], status: int = 422) -> SandboxError:
        message = "; ".join(f"{f.field}: {f.message}" for f in fields)
        return cls(status, "input_validation_error", message, fields)


def error_body(code: str, message: str | None = None, fields: list[FieldError] | None = None) -> dict[str, Any]:
    """The JSON envelope for an error code."""
    error: dict[str, Any] = {"code": code, "message": message or _MESSAGES_BY_CODE.get(code, "Request failed.")}
    if fields:
        error["fields"] = [{"field": f.field, "message": f.message} for f in fields]
    return {"error": error}


def error_response(error: SandboxError) -> JSONResponse:
    """The HTTP response for a `SandboxError`."""
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return JSONResponse(error_body(error.code, error.message, error.fields), error.status, headers=headers)
