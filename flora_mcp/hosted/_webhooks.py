"""`POST /webhooks/flora`: FLORA's signed completion events in, the calls waiting on their runs woken.

FLORA reaches it at `webhook_url(FLORA_PUBLIC_URL)`, sent as `callback_url` with every create. A delivery is taken
only when its `Flora-Signature` matches one of FLORA_WEBHOOK_SECRET's secrets over the exact raw body, within 300 s
(`flora_mcp.api.webhooks`); then its event is recorded once and announced to every replica
(`flora_mcp.core.completions`). No bearer token is asked for: the signature is the credential. Answers: 200
`{"received": true}`, also for an event seen before (`"duplicate": true`: nothing is done again, and FLORA stops
retrying); 400 `invalid_webhook` with the reason for anything unsigned, forged, stale or unreadable; 413 above
`MAX_BODY`. The worst an accepted delivery can do is make a waiting call ask FLORA for its run sooner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from flora_mcp.api.webhooks import SIGNATURE_HEADER, WebhookError, parse_event, verify_signature
from flora_mcp.core.completions import Completions

__all__ = ["MAX_BODY", "WEBHOOK_PATH", "WebhookReceiver", "webhook_url"]

log = logging.getLogger("flora_mcp.hosted.webhooks")

WEBHOOK_PATH = "/webhooks/flora"
MAX_BODY = 64 * 1024
"""FLORA's events are a few hundred bytes; anything far larger is not one."""


def webhook_url(public_url: str) -> str:
    """Where FLORA calls back: FLORA_PUBLIC_URL's origin and path prefix, `/mcp` replaced by `/webhooks/flora`.

    `https://flora.example.com/mcp` -> `https://flora.example.com/webhooks/flora`; `https://example.com/team/mcp`
    -> `https://example.com/team/webhooks/flora` (a proxy that mounts the server under a prefix).
    """
    parts = urlsplit(public_url.strip())
    prefix = parts.path.rstrip("/")
    prefix = prefix.rpartition("/")[0] if prefix.endswith("/mcp") else prefix
    return urlunsplit((parts.scheme, parts.netloc, prefix + WEBHOOK_PATH, "", ""))


class WebhookReceiver:
    """The webhook route's endpoint.

    Args:
        secrets: the `whsec_` secrets a signature may be made with (several during a rotation).
        completions: where taken events go.
        clock: unix time now (tests move it to make timestamps stale).
    """

    def __init__(self, secrets: Sequence[str], completions: Completions, *,
                 clock: Callable[[], float] = time.time) -> None:
        if not secrets:
            raise ValueError("a webhook receiver needs at least one secret")
        self.secrets = tuple(secrets)
        self.completions = completions
        self.clock = clock
        self.refused = 0
        """Deliveries answered 400 or 413."""

    async def receive(self, request: Request) -> Response:
        """Answer one delivery (the route's endpoint)."""
        try:
            body = await _read_limited(request)
        except ClientDisconnect:
            return Response(status_code=400)
        if body is None:
            self.refused += 1
            return _refusal(f"the body is larger than {MAX_BODY} bytes", status=413)
        now = self.clock()
        try:
            verify_signature(body, request.headers.get(SIGNATURE_HEADER), self.secrets, now=now)
            event = parse_event(body)
        except WebhookError as exc:
            self.refused += 1
            log.warning("refused a webhook delivery from %s: %s", _peer(request), exc.message)
            return _refusal(exc.message)
        if not await self.completions.receive(event, now=now):
            log.info("webhook event %s for run %s seen before: not acted on again", event.event_id, event.run_id)
            return JSONResponse({"received": True, "duplicate": True})
        log.info("webhook: run %s %s", event.run_id, event.status)
        return JSONResponse({"received": True})


async def _read_limited(request: Request) -> bytes | None:
    """The raw body, or None once it passes MAX_BODY (the rest is not read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _refusal(reason: str, *, status: int = 400) -> Response:
    return JSONResponse({"error": WebhookError.code, "error_description": reason}, status_code=status)


def _peer(request: Request) -> str:
    return request.client.host if request.client else "unknown"
