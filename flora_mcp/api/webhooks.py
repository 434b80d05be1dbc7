"""FLORA's completion webhooks: a delivery's `Flora-Signature` checked over its raw bytes, and its event read.

From FLORA's SDK 0.11 (`lib/webhooks.ts`): `Flora-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]` (several `v1`
during a secret rotation, any one matching is enough), HMAC-SHA256 keyed with the whole `whsec_...` secret over
`"{t}.{raw body}"`, compared in constant time, `t` within 300 s of now either way. The event names a run and its
status, never its outputs: a receiver fetches the run from FLORA, so a webhook can only ever make a wait shorter.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass

from flora_mcp.api.errors import FloraError

__all__ = ["EVENT_HEADER", "SIGNATURE_HEADER", "TOLERANCE", "WebhookError", "WebhookEvent", "parse_event",
           "verify_signature", "webhook_secrets"]

SIGNATURE_HEADER = "Flora-Signature"
EVENT_HEADER = "Flora-Event"
TOLERANCE = 300.0
"""Seconds a signature's timestamp may be from now, either way."""
SECRET_PREFIX = "whsec_"


class WebhookError(FloraError):
    """A delivery that is refused: unsigned, forged, out of its time window, or not an event we can read."""

    code = "invalid_webhook"


@dataclass(frozen=True)
class WebhookEvent:
    """What a verified delivery says: its event id (the same on every retry of one event) and the run's state."""

    event_id: str
    type: str
    run_id: str
    status: str


def verify_signature(body: bytes, header: str | None, secrets: Sequence[str], *, now: float,
                     tolerance: float = TOLERANCE) -> int:
    """Check `header` against the raw `body`; the signed timestamp when one of `secrets` made it.

    Raises:
        WebhookError: no or malformed header, a timestamp outside `tolerance`, or no signature matching.
    """
    if not header:
        raise WebhookError(f"no {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise WebhookError(f"{SIGNATURE_HEADER} has a timestamp that is not a number") from None
        elif name == "v1" and value:
            candidates.append(value.lower())
    if timestamp is None or not candidates:
        raise WebhookError(f"{SIGNATURE_HEADER} needs t=<unix seconds> and at least one v1=<hex>")
    if abs(now - timestamp) > tolerance:
        raise WebhookError(f"{SIGNATURE_HEADER} timestamp is {abs(now - timestamp):.0f} s from now "
                           f"(at most {tolerance:.0f} s): stale or replayed")
    signed = f"{timestamp}.".encode() + body
    # Every pair is compared, so the time taken says nothing about which secret or candidate came closest.
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise WebhookError(f"{SIGNATURE_HEADER} does not match: not signed with this server's webhook secret")
    return timestamp


def parse_event(body: bytes) -> WebhookEvent:
    """The event of a verified body.

    Raises:
        WebhookError: the body is not a FLORA event naming a run.
    """
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookError("the body is not JSON") from None
    data = event.get("data") if isinstance(event, dict) else None
    if not isinstance(event, dict) or not isinstance(data, dict):
        raise WebhookError("the body is not a FLORA event ({id, type, data: {run_id, status}})")
    fields = (event.get("id"), event.get("type"), data.get("run_id"), data.get("status"))
    if not all(isinstance(value, str) and value for value in fields):
        raise WebhookError("the event lacks one of id, type, data.run_id, data.status")
    event_id, kind, run_id, status = (str(value) for value in fields)
    return WebhookEvent(event_id=event_id, type=kind, run_id=run_id, status=status)


def webhook_secrets(raw: str) -> list[str]:
    """The comma-separated FLORA_WEBHOOK_SECRET values (several during a rotation).

    Raises:
        ValueError: none given, or one that is not a `whsec_` secret.
    """
    values = [value.strip() for value in raw.split(",") if value.strip()]
    if not values or any(not value.startswith(SECRET_PREFIX) or len(value) <= len(SECRET_PREFIX) for value in values):
        raise ValueError(f"each webhook secret starts with {SECRET_PREFIX} (as FLORA shows it); comma-separate "
                         "several during a rotation")
    return values
