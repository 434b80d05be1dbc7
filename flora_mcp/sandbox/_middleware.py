"""The ASGI layer in front of every route: request ids, the request log, added latency and injected faults.

It matches routes itself (a small table of patterns) so that a fault can answer without the handler running.
A `drop` sends the response head and returns without a body, which makes uvicorn close the connection; the error
uvicorn logs for that, and its access log, are silenced by `install_log_filters` for sandbox requests only.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qsl

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flora_mcp.sandbox._errors import error_body
from flora_mcp.sandbox._faults import Fault, RecordedRequest
from flora_mcp.sandbox._state import SandboxState

__all__ = ["SandboxMiddleware", "install_log_filters", "route_name"]

_ROUTES = [
    (name, method, re.compile(pattern))
    for name, method, pattern in (
        ("list_techniques", "GET", r"/api/v1/techniques/?"),
        ("get_technique", "GET", r"/api/v1/techniques/[^/]+"),
        ("create_technique_run", "POST", r"/api/v1/techniques/[^/]+/runs/?"),
        ("get_technique_run", "GET", r"/api/v1/techniques/[^/]+/runs/[^/]+"),
        ("create_run", "POST", r"/api/v1/runs/technique"),
        ("get_run", "GET", r"/api/v1/runs/[^/]+"),
        ("list_workspaces", "GET", r"/api/v1/workspaces/?"),
        ("list_technique_runs", "GET", r"/api/v1/technique-runs/?"),
        ("create_asset", "POST", r"/api/v1/assets/?"),
        ("list_assets", "GET", r"/api/v1/assets/?"),
        ("get_asset", "GET", r"/api/v1/assets/[^/]+"),
        ("complete_asset", "POST", r"/api/v1/assets/[^/]+/complete"),
        ("retry_asset", "POST", r"/api/v1/assets/[^/]+/retry"),
        ("bucket_upload", "POST", r"/bucket/?"),
        ("bucket_upload", "PUT", r"/bucket/.+"),
        ("files", "GET", r"/files/.+"),
    )
]

_PROXY_PAGE = (
    b"<html>\r\n<head><title>{status} Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>{status} Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_SYNTHETIC_BODY = b'{"run_id": "run_0000000000000000", "status": "pending", "progress": 0, "created_at": 1700000000000}'

logger = logging.getLogger(__name__)

# Set inside the request's own task, where uvicorn also logs about that request, so the filters below can tell
# the sandbox's requests from those of any other uvicorn server in the process (the MCP server's, say).
_in_sandbox: ContextVar[bool] = ContextVar("flora_sandbox_request", default=False)
_dropping: ContextVar[bool] = ContextVar("flora_sandbox_dropping", default=False)


class _SandboxLogFilter(logging.Filter):
    def __init__(self, flag: ContextVar[bool]) -> None:
        super().__init__()
        self.flag = flag

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.flag.get()


def install_log_filters() -> None:
    """Silence uvicorn's access log for sandbox requests and its error about connections dropped on purpose."""
    for name, flag in (("uvicorn.access", _in_sandbox), ("uvicorn.error", _dropping)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _SandboxLogFilter) for f in logger.filters):
            logger.addFilter(_SandboxLogFilter(flag))


def route_name(method: str, path: str) -> str | None:
    """The sandbox route name for a request, or None when no API/file route matches."""
    method = "GET" if method == "HEAD" else method
    for name, route_method, pattern in _ROUTES:
        if route_method == method and pattern.fullmatch(path):
            return name
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _parse_body(raw: bytes, content_type: str) -> Any | None:
    """JSON as data, text as text; an upload (multipart, binary) only as its size, not megabytes of it in the log."""
    if not raw:
        return None
    media_type = content_type.split(";")[0].strip().lower()
    if media_type.startswith(("multipart/", "image/", "video/", "audio/", "application/octet-stream",
                              "application/pdf")):
        return f"<{len(raw)} bytes of {media_type}>"
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")


class SandboxMiddleware:
    """Adds `request-id`, records requests, applies latency and faults, then calls the routes."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        _in_sandbox.set(True)
        request_id = "req_" + secrets.token_hex(12)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((b"request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        root_path: str = scope.get("root_path", "")
        path: str = scope["path"]
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        try:
            if path.startswith("/_sandbox/"):
                await self.app(scope, receive, send_with_id)
            else:
                await self._handle(scope, receive, send_with_id, path, request_id)
        except Exception:
            # Answered here, not by Starlette's outer error middleware, so that 500s carry a request-id too.
            logger.exception("sandbox request %s failed", request_id)
            if not started:
                body = json.dumps(error_body("unknown_error")).encode()
                await _respond(send_with_id, 500, b"application/json", body, [])

    async def _handle(self, scope: Scope, receive: Receive, send: Send, path: str, request_id: str) -> None:
        raw = await _read_body(receive)
        body = _parse_body(raw, _header(scope, b"content-type") or "")
        authorization = _header(scope, b"authorization") or ""
        scheme, _, key = authorization.partition(" ")
        # The header alone: a key sent only in the body is in `body`, so a test can tell which of the two a client sent.
        idempotency_key = _header(scope, b"idempotency-key")
        record = RecordedRequest(
            route=route_name(scope["method"], path) or "unknown",
            method=scope["method"],
            path=path,
            query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))),
            api_key=key.strip() if scheme.lower() == "bearer" and key.strip() else None,
            idempotency_key=idempotency_key,
            body=body,
            request_id=request_id,
        )
        self.state.requests.append(record)

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            await send(message)

        replay = _replaying(raw, receive)
        if self.state.latency > 0:
            await anyio.sleep(self.state.latency)
        fault = self.state.faults.take(record.route)
        if fault is None:
            await self.app(scope, replay, recording_send)
        elif fault.when == "before":
            await _answer_fault(fault, None, receive, recording_send)
        else:
            captured = _Captured()
            await self.app(scope, replay, captured.send)
            await _answer_fault(fault, captured, receive, recording_send)
        if fault is not None and fault.kind == "drop":
            record.status = 0


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(raw: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay


class _Captured:
    """A whole response held back so that a fault can spoil it."""

    def __init__(self) -> None:
        self.status = 200
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


async def _respond(send: Send, status: int, content_type: bytes, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _wait_or_disconnect(receive: Receive, seconds: float) -> bool:
    """Sleep `seconds`; True if the client went away meanwhile."""
    with anyio.move_on_after(seconds):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return True
    return False


async def _answer_fault(fault: Fault, captured: _Captured | None, receive: Receive, send: Send) -> None:
    if fault.kind == "status":
        extra = [(b"retry-after", f"{fault.retry_after:g}".encode())] if fault.retry_after is not None else []
        body = json.dumps(error_body(fault.code, fault.message)).encode()
        await _respond(send, fault.status, b"application/json", body, extra)
    elif fault.kind == "html":
        page = _PROXY_PAGE.replace(b"{status}", str(fault.status).encode())
        await _respond(send, fault.status, b"text/html", page, [])
    elif fault.kind == "truncated":
        whole = captured.body if captured is not None and captured.body else _SYNTHETIC_BODY
        await _respond(send, fault.status, b"application/json", whole[: max(1, len(whole) // 2)], [])
    elif fault.kind == "run_failed":
        run = json.loads(captured.body) if captured is not None and captured.body else json.loads(_SYNTHETIC_BODY)
        run.update(status="failed", outputs=[], error_code=fault.code, error_message=fault.message or "The run failed.")
        await _respond(send, fault.status, b"application/json", json.dumps(run).encode(), [])
    elif fault.kind == "drop":
        length = len(captured.body) if captured is not None and captured.body else len(_SYNTHETIC_BODY)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(length).encode())]
        await send({"type": "http.response.start", "status": fault.status, "headers": headers})
        _dropping.set(True)
    elif fault.kind == "stall":
        if await _wait_or_disconnect(receive, fault.seconds):
            return
        if captured is not None:
            await send({"type": "http.response.start", "status": captured.status, "headers": captured.headers})
            await send({"type": "http.response.body", "body": captured.body})
        else:
            body = json.dumps(error_body("unknown_error", "Gateway timeout.")).encode()
            await _respond(send, fault.status, b"application/json", body, [])
