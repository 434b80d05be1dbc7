from __future__ import annotations

import logging

import pytest

from flora_mcp import logs
from flora_mcp.logs import REDACTED, RedactingFilter, add_secret, redact, redact_value


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


def test_every_string_of_a_value_is_redacted_keys_included_and_a_clean_value_comes_back_as_it_is(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_secrets", type(logs._secrets)())
    add_secret("tok-ABCDEF-123")
    value = {"outer": [{"tok-ABCDEF-123": ("x tok-ABCDEF-123", 3)}], "key sk_live_abc123XYZ_9": None,
             "auth": ["Bearer abcdefgh1"], "n": 1.5}
    assert redact_value(value) == {"outer": [{REDACTED: (f"x {REDACTED}", 3)}], f"key {REDACTED}": None,
                                   "auth": [f"Bearer {REDACTED}"], "n": 1.5}
    # Nobody registered these: the patterns alone find them.
    assert redact_value({"k": ["sk_live_abc123XYZ_9"], "h": "BEARER abcdefgh1"}) == {"k": [REDACTED],
                                                                                  "h": f"BEARER {REDACTED}"}
    clean = {"outer": [{"a": ("b", 3)}], "text": "é\u2028 tok-ABC", "n": None}
    assert redact_value(clean) is clean  # no walk, no copy: nothing in it to hide


def test_a_secret_whose_start_json_escapes_is_looked_for_string_by_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_secrets", type(logs._secrets)())
    add_secret('ab"cd\\ef-123456')  # in a value's JSON text it reads ab\"cd\\ef...: not there as itself
    assert redact_value({"k": ['x ab"cd\\ef-123456 y']}) == {"k": [f"x {REDACTED} y"]}
    assert logs.json_may_hide_secrets('{"k": "nothing"}')  # such a secret registered: always string by string


def test_a_value_json_cannot_write_is_redacted_all_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_secrets", type(logs._secrets)())
    add_secret("tok-ABCDEF-123")
    assert redact_value({("tuple", "key"): "tok-ABCDEF-123"}) == {("tuple", "key"): REDACTED}
    unprintable = type("Unprintable", (), {"__str__": lambda self: 1 / 0})()
    assert redact_value(["tok-ABCDEF-123", unprintable]) == [REDACTED, unprintable]
