from __future__ import annotations

import logging

import pytest

from flora_mcp import logs
from flora_mcp.logs import REDACTED, RedactingFilter, add_secret, redact


def test_a_flora_shaped_key_is_hidden_even_when_nobody_registered_it() -> None:
    assert redact("bad key sk_live_abc123XYZ_9 here") == f"bad key {REDACTED} here"
    assert redact("Bearer sk_test_0123456789") == f"Bearer {REDACTED}"
    assert redact("sk_ and task_id sk_x") == "sk_ and task_id sk_x"  # too short to be a key


def test_a_bearer_credential_is_hidden_whatever_the_case_and_short_texts_pass_through(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_secrets", type(logs._secrets)())
    assert redact("AUTHORIZATION: BEARER tok.ABC/def+9") == f"AUTHORIZATION: BEARER {REDACTED}"
    assert redact("authorization: bEaReR tok.ABC/def+9") == f"authorization: bEaReR {REDACTED}"
    add_secret("abc123")  # the shortest registered secret there is
    assert redact("abc123") == REDACTED and redact("abc12") == "abc12" and redact("x abc123") == f"x {REDACTED}"


def test_registered_secrets_of_any_shape_are_hidden_and_the_set_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_secrets", type(logs._secrets)())
    add_secret("tok-ABCDEF-123")
    assert redact("Authorization: tok-ABCDEF-123") == f"Authorization: {REDACTED}"
    for n in range(logs.MAX_SECRETS + 10):
        add_secret(f"token-number-{n:05d}")
    assert len(logs._secrets) == logs.MAX_SECRETS
    assert "tok-ABCDEF-123" not in logs._secrets  # the oldest went first
    assert redact(f"token-number-{logs.MAX_SECRETS + 9:05d}") == REDACTED


def test_the_filter_redacts_messages_arguments_and_tracebacks() -> None:
    record = logging.LogRecord("flora_mcp", logging.ERROR, __file__, 1, "key %s failed", ("sk_live_SECRET0001",),
                               None)
    try:
        raise RuntimeError("boom sk_live_SECRET0002")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "SECRET0001" not in text and "SECRET0002" not in text and "boom" in text
