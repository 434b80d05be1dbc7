"""Every way a FLORA call can fail, as one exception tree.

    FloraError                      anything flora-mcp raises on purpose
    └── APIError                    a call to FLORA did not give a usable answer (endpoint, request_id,
                                    outcome_unknown: may FLORA have acted on it anyway?)
        ├── APIConnectionError      no HTTP answer: refused, reset, dropped (`maybe_sent`: did FLORA get the request?)
        │   └── APITimeoutError     no answer within the per-request timeout
        ├── APIResponseError        an answer we cannot use: not JSON, a missing field, an unknown status
        │   └── UnsafeURLError      it points where flora-mcp does not connect (an upload target on a private address)
        └── APIStatusError          FLORA's error envelope (or a non-2xx without one): status_code, code, fields
            ├── BadRequestError         400/422 input_validation_error, invalid_json
            ├── AuthenticationError     401 unauthorized, invalid_api_key
            ├── InsufficientCreditsError 402 insufficient_credits
            ├── PermissionDeniedError   403 forbidden
            ├── NotFoundError           404 not_found
            ├── IdempotencyError        409 idempotency_duplicate, 422 idempotency_conflict: the run already exists
            ├── RateLimitError          429 rate_limited (retry_after)
            └── ServerError             5xx unknown_error, and any status we do not know
    └── UploadError                 a file did not become a ready asset: refused before sending (`asset_id` None), or
                                    FLORA failed it (`failure_message`), or it was still pending when the wait ended

`error_from_response` is the one place an HTTP answer becomes an exception (FLORA's envelope, or a storage bucket's
XML `<Error>`); `map_transport_errors` is the one place httpx's exceptions and the fetch guard's refusals do.
Decisions are made on FLORA's `error.code`, falling back to the HTTP status.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from xml.sax.saxutils import unescape

import httpx

from flora_mcp._fetch_guard import FetchRefused
from flora_mcp.logs import redact

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "FloraError",
    "IdempotencyError",
    "InsufficientCreditsError",
    "InvalidURLError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "UnsafeURLError",
    "UploadError",
    "error_from_response",
    "map_transport_errors",
]


class FloraError(Exception):
    """Base class of every error flora-mcp raises on purpose."""

    code: str = "flora_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIError(FloraError):
    """A call to FLORA did not give a usable answer."""

    code = "api_error"

    def __init__(self, message: str, *, endpoint: str = "", request_id: str | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.request_id = request_id
        self.unknown_before = False
        """An earlier attempt of the same request ended with an unknown outcome (set by the client's retries)."""

    @property
    def outcome_unknown(self) -> bool:
        """Whether FLORA may have acted on the request although no usable answer says what it did.

        For a create this decides everything: a run may exist and be charged, so the call must not be reported as
        "nothing was sent", and its idempotency key must be kept. The one rule, for every caller. A request whose
        earlier attempt may have been acted on stays unknown whatever its last attempt got (a refused connection,
        a 429): that attempt's answer says nothing of the earlier one.
        """
        if self.unknown_before:
            return True
        if isinstance(self, APIConnectionError):
            return self.maybe_sent
        if isinstance(self, APIStatusError):
            return self.status_code >= 500
        return True  # an answer we could not read (a 2xx, most likely): the request was most likely acted on


class APIConnectionError(APIError):
    """No HTTP answer came back. `maybe_sent` is true when FLORA may have received and acted on the request."""

    code = "connection_error"

    def __init__(self, message: str, *, endpoint: str = "", maybe_sent: bool = True) -> None:
        super().__init__(message, endpoint=endpoint)
        self.maybe_sent = maybe_sent


class InvalidURLError(APIConnectionError):
    """The URL to request is no valid URL (a control character, too long, a bad port): nothing was sent."""

    code = "invalid_url"

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        super().__init__(message, endpoint=endpoint, maybe_sent=False)


class APITimeoutError(APIConnectionError):
    """No answer within the per-request timeout."""

    code = "timeout"


class APIResponseError(APIError):
    """FLORA answered, but not in a form we can use (not JSON, a missing field, an unknown status)."""

    code = "malformed_response"


class UnsafeURLError(APIResponseError):
    """FLORA's answer names a URL that the fetch guard refuses to connect to; never retried."""

    code = "unsafe_url"


class APIStatusError(APIError):
    """FLORA answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str,
        endpoint: str = "",
        request_id: str | None = None,
        fields: list[dict[str, str]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint, request_id=request_id)
        self.status_code = status_code
        self.code = code
        self.fields = fields or []
        self.retry_after = retry_after


class BadRequestError(APIStatusError):
    """The request was refused as invalid (400/422)."""


class AuthenticationError(APIStatusError):
    """The API key is missing, wrong or revoked (401)."""


class InsufficientCreditsError(APIStatusError):
    """The account has too few credits for this run (402)."""


class PermissionDeniedError(APIStatusError):
    """The key may not do this (403)."""


class NotFoundError(APIStatusError):
    """No such technique, run or workspace (404)."""


class IdempotencyError(APIStatusError):
    """The idempotency key was used before: a run for this request already exists (409/422)."""


class RateLimitError(APIStatusError):
    """Too many requests (429); `retry_after` says when to try again."""


class ServerError(APIStatusError):
    """FLORA failed (5xx) or answered a status we do not know."""


class UploadError(FloraError):
    """A file did not become a ready asset. `sent` is False when no byte of it left (it was refused here)."""

    code = "upload_failed"

    def __init__(self, message: str, *, asset_id: str | None = None, status: str | None = None,
                 failure_message: str | None = None, sent: bool | None = None) -> None:
        super().__init__(message)
        self.asset_id = asset_id
        self.status = status
        self.failure_message = failure_message
        self.sent = asset_id is not None if sent is None else sent


_CLASS_BY_CODE: dict[str, type[APIStatusError]] = {
    "input_validation_error": BadRequestError,
    "invalid_json": BadRequestError,
    "unauthorized": AuthenticationError,
    "invalid_api_key": AuthenticationError,
    "insufficient_credits": InsufficientCreditsError,
    "forbidden": PermissionDeniedError,
    "not_found": NotFoundError,
    "idempotency_duplicate": IdempotencyError,
    "idempotency_conflict": IdempotencyError,
    "rate_limited": RateLimitError,
    "unknown_error": ServerError,
}

_CODE_BY_STATUS: dict[int, str] = {
    400: "input_validation_error",
    401: "unauthorized",
    402: "insufficient_credits",
    403: "forbidden",
    404: "not_found",
    409: "idempotency_duplicate",
    422: "input_validation_error",
    429: "rate_limited",
}


def error_from_response(
    response: httpx.Response, *, endpoint: str, retry_after: float | None = None
) -> APIStatusError:
    """Turn a non-2xx answer into the matching APIStatusError, with or without FLORA's envelope.

    A server that echoes the key it was sent (some do, in a 401) does not put it into the error: the texts are
    redacted of the request's bearer token and of anything shaped like a FLORA key.
    """
    request_id = response.headers.get("request-id") or response.headers.get("x-request-id")
    envelope = _error_envelope(response)
    secrets = _sent_secrets(response)
    if envelope is not None:
        code = str(envelope.get("code") or _CODE_BY_STATUS.get(response.status_code, "unknown_error"))
        message = redact(str(envelope.get("message") or f"HTTP {response.status_code}"), secrets)
        raw_fields = envelope.get("fields")
        fields = [
            {"field": redact(str(f.get("field", "")), secrets), "message": redact(str(f.get("message", "")), secrets)}
            for f in (raw_fields if isinstance(raw_fields, list) else [])
            if isinstance(f, dict)
        ]
    else:
        code = _CODE_BY_STATUS.get(response.status_code, "unknown_error")
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        message = f"HTTP {response.status_code} {response.reason_phrase} without FLORA's error envelope ({kind})"
        fields = []
    cls = _CLASS_BY_CODE.get(code)
    if cls is None:
        cls = _class_for_status(response.status_code)
    return cls(
        message,
        status_code=response.status_code,
        code=code,
        endpoint=endpoint,
        request_id=request_id,
        fields=fields,
        retry_after=retry_after,
    )


def _sent_secrets(response: httpx.Response) -> list[str]:
    try:
        authorization = response.request.headers.get("authorization", "")
    except RuntimeError:  # a Response built without its request
        return []
    token = authorization.partition(" ")[2].strip()
    return [token] if token else []


def _class_for_status(status: int) -> type[APIStatusError]:
    code = _CODE_BY_STATUS.get(status)
    return _CLASS_BY_CODE.get(code, ServerError) if code else ServerError


_XML_CODE = re.compile(r"<Code>([^<]{1,100})</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]{0,500})</Message>")


def _xml_error(response: httpx.Response) -> dict[str, Any] | None:
    """A storage bucket's `<Error><Code>AccessDenied</Code><Message>...</Message></Error>` (S3 and its likes)."""
    text = response.text[:4000]
    code, message = _XML_CODE.search(text), _XML_MESSAGE.search(text)
    if code is None:
        return None
    said = f"{unescape(code.group(1))}: {unescape(message.group(1))}" if message else unescape(code.group(1))
    return {"code": None, "message": f"the upload target said {said}"}


def _error_envelope(response: httpx.Response) -> dict[str, Any] | None:
    if "xml" in response.headers.get("content-type", ""):
        return _xml_error(response)
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        return error
    # Liberal in what we accept: {"error": "text"} or a bare {"code", "message"} are envelopes too.
    if isinstance(error, str):
        return {"code": body.get("code"), "message": body.get("message") or error}
    if isinstance(body.get("message"), str) and ("code" in body or response.status_code >= 400):
        return {"code": body.get("code"), "message": body["message"], "fields": body.get("fields")}
    return None


# These happen before the request could have reached FLORA, so a POST that failed this way did nothing.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@contextmanager
def map_transport_errors(endpoint: str) -> Iterator[None]:
    """Translate httpx's transport exceptions into APIConnectionError / APITimeoutError, a URL httpx cannot request
    into InvalidURLError, the guard's refusals into UnsafeURLError."""
    try:
        yield
    except FetchRefused as exc:
        raise UnsafeURLError(f"{endpoint}: refused to connect: {exc}", endpoint=endpoint) from exc
    except httpx.InvalidURL as exc:  # raised as the request is built, before anything is sent
        raise InvalidURLError(f"{endpoint}: not a valid URL ({exc})", endpoint=endpoint) from exc
    except httpx.TimeoutException as exc:
        maybe_sent = not isinstance(exc, _NOT_SENT)
        raise APITimeoutError(f"{endpoint}: no answer in time ({type(exc).__name__})", endpoint=endpoint,
                              maybe_sent=maybe_sent) from exc
    except httpx.TransportError as exc:
        maybe_sent = not isinstance(exc, _NOT_SENT)
        detail = str(exc) or type(exc).__name__
        raise APIConnectionError(f"{endpoint}: connection failed ({detail})", endpoint=endpoint,
                                 maybe_sent=maybe_sent) from exc
