"""FLORA's webhook signature, checked as its SDK describes it, and its event read: every refusal named."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from flora_mcp.api.webhooks import TOLERANCE, WebhookError, parse_event, verify_signature, webhook_secrets
from flora_mcp.sandbox import sign_webhook

SECRET = "whsec_test_0123456789abcdef"
NOW = 1_790_000_000
BODY = json.dumps({"id": "evt_1", "type": "run.completed", "api_version": "v", "created_at": NOW * 1000,
                   "data": {"run_id": "run_1", "run_type": "technique", "workspace_id": "ws_1",
                            "status": "completed"}}).encode()


def signed(body: bytes = BODY, *, secret: str = SECRET, t: int = NOW) -> str:
    """The header, computed here from the definition, not by the code under test."""
    return f"t={t},v1=" + hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def test_a_signature_over_the_raw_body_with_the_whole_secret_is_accepted() -> None:
    assert verify_signature(BODY, signed(), [SECRET], now=NOW) == NOW


def test_the_sandbox_signs_exactly_as_the_definition_says() -> None:
    assert sign_webhook(SECRET, NOW, BODY) == signed()


@pytest.mark.parametrize("header", [
    signed(secret="whsec_another_secret"),                      # forged: another key
    signed(secret=SECRET.removeprefix("whsec_")),               # keyed without the prefix
    signed(json.dumps(json.loads(BODY), indent=1).encode()),    # the same JSON, re-serialized
    signed(BODY + b" "),                                        # one byte more
    f"t={NOW}," + signed(t=NOW + 1).split(",")[1],              # signed for another moment than it says
    signed().replace("v1=", "v0="),                             # an unknown scheme only
])
def test_a_signature_that_does_not_match_is_refused(header: str) -> None:
    with pytest.raises(WebhookError) as caught:
        verify_signature(BODY, header, [SECRET], now=NOW)
    assert caught.value.code == "invalid_webhook"


@pytest.mark.parametrize("offset", [TOLERANCE + 1, -(TOLERANCE + 1), 3600])
def test_a_timestamp_outside_300_seconds_either_way_is_refused_even_when_signed(offset: float) -> None:
    t = int(NOW - offset)
    with pytest.raises(WebhookError, match="stale or replayed"):
        verify_signature(BODY, signed(t=t), [SECRET], now=NOW)


@pytest.mark.parametrize("offset", [TOLERANCE, -TOLERANCE, 0])
def test_a_timestamp_within_300_seconds_is_accepted(offset: float) -> None:
    t = int(NOW - offset)
    assert verify_signature(BODY, signed(t=t), [SECRET], now=NOW) == t


@pytest.mark.parametrize(("header", "says"), [
    (None, "no Flora-Signature"),
    ("", "no Flora-Signature"),
    ("v1=abc", "needs t="),
    (f"t={NOW}", "needs t="),
    ("t=yesterday,v1=abc", "not a number"),
])
def test_a_missing_or_malformed_header_is_refused_saying_what_is_wrong(header: str | None, says: str) -> None:
    with pytest.raises(WebhookError, match=says):
        verify_signature(BODY, header, [SECRET], now=NOW)


def test_during_a_rotation_any_v1_and_any_of_our_secrets_may_match() -> None:
    old, new = "whsec_old_secret_value", "whsec_new_secret_value"
    both = signed(secret=old) + "," + signed(secret=new).split(",")[1]
    assert verify_signature(BODY, both, [new], now=NOW) == NOW
    assert verify_signature(BODY, signed(secret=old), [new, old], now=NOW) == NOW
    with pytest.raises(WebhookError):
        verify_signature(BODY, signed(secret=old), [new], now=NOW)


def test_the_event_is_read_for_its_id_type_run_and_status() -> None:
    event = parse_event(BODY)
    assert (event.event_id, event.type, event.run_id, event.status) == ("evt_1", "run.completed", "run_1",
                                                                        "completed")


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"id": "evt_1"}', b'{"id": "evt_1", "type": "x", "data": {}}',
                                  b'{"id": 1, "type": "x", "data": {"run_id": "r", "status": "s"}}'])
def test_a_body_that_is_not_an_event_naming_a_run_is_refused(body: bytes) -> None:
    with pytest.raises(WebhookError):
        parse_event(body)


def test_webhook_secrets_are_whsec_values_comma_separated() -> None:
    assert webhook_secrets(" whsec_a1, whsec_b2 ") == ["whsec_a1", "whsec_b2"]
    for bad in ("", "sk_live_x", "whsec_", "whsec_a,oops"):
        with pytest.raises(ValueError, match="whsec_"):
            webhook_secrets(bad)
