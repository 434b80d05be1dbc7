"""Completion callbacks: a run created with `callback_url` is announced there, signed, when it ends.

As FLORA's SDK (0.11, `lib/webhooks.ts`) describes them: one POST per event, headers `Flora-Signature: t=<unix
seconds>,v1=<hex>`, `Flora-Webhook-Id: whd_...` and `Flora-Event`; the signature is HMAC-SHA256 keyed with the whole
`whsec_...` secret over `"{t}.{raw body}"`; the body carries the run's id and status, no outputs. A delivery the
receiver does not take (no answer, 408, 429, 5xx) is tried again, re-signed, up to `ATTEMPTS` times; any other 4xx
is final. Faults on the route `"webhook"` (`_faults.py`) drop, delay, duplicate, forge or age a delivery, and every
delivery is kept in `Webhooks.deliveries` with the receiver's answers, for tests to count and replay.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from flora_mcp.sandbox._faults import WEBHOOK_ROUTE, Faults
from flora_mcp.sandbox._fetch import ssl_context
from flora_mcp.sandbox._runs import Run, now_ms

__all__ = ["ATTEMPTS", "STALE_AGE", "Delivery", "Webhooks", "sign_webhook"]

logger = logging.getLogger(__name__)

ATTEMPTS = 3
STALE_AGE = 600
"""Seconds a `stale` fault backdates the signature's timestamp: twice the receivers' 300 s tolerance."""
API_VERSION = "2026-07-01"
FORGED_SECRET = "whsec_forged_by_the_sandbox"
TIMEOUT = 10.0


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    """The `Flora-Signature` header value of `body` sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass
class Delivery:
    """One event sent (or meant to be sent) to a run's callback URL."""

    run_id: str
    url: str
    event_id: str
    event_type: str
    body: bytes
    delivery_id: str = field(default_factory=lambda: "whd_" + secrets.token_hex(8))
    fault: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """The headers of the last attempt sent."""
    answers: list[int] = field(default_factory=list)
    """The receiver's status per attempt, in order; 0 when no answer came."""

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "url": self.url, "event_id": self.event_id, "event_type": self.event_type,
                "delivery_id": self.delivery_id, "fault": self.fault, "headers": self.headers,
                "body": self.body.decode(), "answers": self.answers}


def event_body(run: Run) -> tuple[str, str, bytes]:
    """The event id, type and raw JSON body announcing a finished run."""
    event_id = "evt_" + secrets.token_hex(8)
    event_type = "run.completed" if run.status == "completed" else "run.failed"
    data: dict[str, Any] = {"run_id": run.run_id, "run_type": "technique", "workspace_id": run.workspace_id,
                            "status": run.status}
    if run.error_code is not None:
        data["error_code"] = run.error_code
        data["error_message"] = run.error_message
    body = {"id": event_id, "type": event_type, "api_version": API_VERSION, "created_at": now_ms(), "data": data}
    return event_id, event_type, json.dumps(body, separators=(",", ":")).encode()


class Webhooks:
    """Sends the callbacks of one sandbox and remembers them."""

    def __init__(self, secret: str, faults: Faults, retry_delay: float) -> None:
        self.secret = secret
        self.faults = faults
        self.retry_delay = retry_delay
        self.deliveries: list[Delivery] = []

    def for_run(self, run_id: str) -> list[Delivery]:
        """The deliveries announcing one run, in the order they were made."""
        return [d for d in self.deliveries if d.run_id == run_id]

    async def announce(self, run: Run) -> None:
        """Send the event of a finished run to its callback URL, as the next `"webhook"` fault says; never raises."""
        if run.callback_url is None:
            return
        event_id, event_type, body = event_body(run)
        fault = self.faults.take(WEBHOOK_ROUTE)
        delivery = Delivery(run.run_id, run.callback_url, event_id, event_type, body,
                            fault=fault.kind if fault else None)
        self.deliveries.append(delivery)
        if fault is not None and fault.kind == "drop":
            return
        if fault is not None and fault.kind == "delay":
            await anyio.sleep(fault.seconds)
        secret = FORGED_SECRET if fault is not None and fault.kind == "forge" else self.secret
        age = STALE_AGE if fault is not None and fault.kind == "stale" else 0
        async with httpx.AsyncClient(timeout=TIMEOUT, trust_env=False, follow_redirects=False,
                                     verify=ssl_context()) as client:
            await self._send(client, delivery, secret, age)
            if fault is not None and fault.kind == "duplicate":
                await self._send(client, delivery, secret, age)

    async def _send(self, client: httpx.AsyncClient, delivery: Delivery, secret: str, age: int) -> None:
        delay = self.retry_delay
        for attempt in range(ATTEMPTS):
            timestamp = int(time.time()) - age
            delivery.headers = {"Content-Type": "application/json", "Flora-Signature": sign_webhook(secret, timestamp,
                                                                                           delivery.body),
                                "Flora-Webhook-Id": delivery.delivery_id, "Flora-Event": delivery.event_type}
            try:
                response = await client.post(delivery.url, content=delivery.body, headers=delivery.headers)
                status = response.status_code
            except httpx.HTTPError as exc:
                logger.info("callback for %s to %s: %s", delivery.run_id, delivery.url, type(exc).__name__)
                status = 0
            delivery.answers.append(status)
            if status not in (0, 408, 429) and status < 500:
                return
            if attempt + 1 < ATTEMPTS:
                await anyio.sleep(delay)
                delay *= 2
