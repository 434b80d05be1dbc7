from __future__ import annotations

import email.utils
import logging
import time

import httpx
import pytest

from flora_mcp.api.errors import (
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    UnsafeURLError,
)
from flora_mcp.api.retry import MAX_RETRY_DELAY, RetryPolicy

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        pytest.param({"retry-after-ms": "1500"}, 1.5, id="ms"),
        pytest.param({"retry-after": "7"}, 7.0, id="seconds"),
        pytest.param({"retry-after": "2.5"}, 2.5, id="fractional"),
        pytest.param({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0, id="http-date"),
        pytest.param({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0, id="date-in-past"),
        pytest.param({"retry-after-ms": "x", "retry-after": "3"}, 3.0, id="bad-ms-falls-back"),
        pytest.param({"retry-after": "soon"}, None, id="garbage"),
        pytest.param({}, None, id="absent"),
    ],
)
def test_parse_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert RetryPolicy.parse_retry_after(httpx.Headers(headers), now=NOW) == seconds


def status(code: int, name: str = "x", retry_after: float | None = None) -> APIStatusError:
    return APIStatusError("m", status_code=code, code=name, retry_after=retry_after)


@pytest.mark.parametrize(
    ("error", "idempotent", "retried"),
    [
        pytest.param(status(429, "rate_limited"), True, True, id="429"),
        pytest.param(status(408), True, True, id="408"),
        pytest.param(status(500), True, True, id="500"),
        pytest.param(status(502), True, True, id="502"),
        pytest.param(status(503), True, True, id="503"),
        *[pytest.param(status(c), True, False, id=str(c)) for c in (400, 401, 402, 403, 404, 409, 422)],
        pytest.param(APIConnectionError("reset", maybe_sent=True), True, True, id="reset-idempotent"),
        pytest.param(APIConnectionError("reset", maybe_sent=True), False, False, id="reset-unsafe-post"),
        pytest.param(APIConnectionError("refused", maybe_sent=False), False, True, id="refused-never-sent"),
        pytest.param(APITimeoutError("slow", maybe_sent=True), True, True, id="timeout"),
        pytest.param(APIResponseError("html"), True, True, id="malformed"),
        pytest.param(status(429, "rate_limited", retry_after=3600), True, False, id="retry-after-too-long"),
    ],
)
def test_what_is_retried(error: Exception, idempotent: bool, retried: bool) -> None:
    assert RetryPolicy().should_retry(error, attempt=0, idempotent=idempotent) is retried  # type: ignore[arg-type]


def test_retries_stop_after_max_and_backoff_is_capped() -> None:
    policy = RetryPolicy(max_retries=2)
    err = status(503)
    assert policy.should_retry(err, attempt=1, idempotent=True)
    assert not policy.should_retry(err, attempt=2, idempotent=True)
    delays = [policy.delay(err, attempt=n) for n in range(10)]
    assert all(0 < d <= MAX_RETRY_DELAY for d in delays)
    assert delays[0] <= 0.5 and delays[9] >= MAX_RETRY_DELAY * 0.75


def test_delay_honours_retry_after() -> None:
    assert RetryPolicy().delay(status(429, retry_after=4.0), attempt=0) == 4.0


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=3.0)
    err = status(503)
    monkeypatch.setattr("flora_mcp.api.retry.random.random", lambda: 0.0)
    assert [policy.delay(err, attempt=n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    # Jitter only ever shortens the pause, by at most a quarter.
    monkeypatch.setattr("flora_mcp.api.retry.random.random", lambda: 1.0)
    assert [policy.delay(err, attempt=n) for n in range(3)] == [0.375, 0.75, 1.5]


def test_retry_after_is_clamped_to_zero_and_the_cap() -> None:
    policy = RetryPolicy(max_retry_after=10.0)
    assert policy.delay(status(429, retry_after=-5.0), attempt=0) == 0.0
    assert policy.delay(status(429, retry_after=25.0), attempt=0) == 10.0


def test_a_retry_after_of_exactly_the_cap_is_still_waited_for() -> None:
    policy = RetryPolicy(max_retry_after=60.0)
    assert policy.should_retry(status(429, retry_after=60.0), attempt=0, idempotent=True)
    assert not policy.should_retry(status(429, retry_after=60.5), attempt=0, idempotent=True)


@pytest.mark.parametrize(
    ("code", "retried"),
    [(408, True), (429, True), (500, False), (502, False), (503, False), (504, False), (599, False)],
)
def test_a_post_without_a_key_is_resent_only_when_flora_refused_it_unread(code: int, retried: bool) -> None:
    assert RetryPolicy().should_retry(status(code), attempt=0, idempotent=False) is retried


def test_unknown_5xx_statuses_are_retried_but_other_unknown_statuses_are_not() -> None:
    assert RetryPolicy().should_retry(status(599), attempt=0, idempotent=True)
    assert not RetryPolicy().should_retry(status(418), attempt=0, idempotent=True)
    assert not RetryPolicy().should_retry(status(499), attempt=0, idempotent=True)


def test_a_malformed_answer_to_a_post_without_a_key_is_not_resent() -> None:
    assert not RetryPolicy().should_retry(APIResponseError("html"), attempt=0, idempotent=False)


def test_an_unsafe_url_is_never_retried() -> None:
    assert not RetryPolicy().should_retry(UnsafeURLError("private"), attempt=0, idempotent=True)


def test_an_http_date_is_measured_from_the_clock_when_no_time_is_given() -> None:
    headers = httpx.Headers({"retry-after": email.utils.formatdate(time.time() + 3600, usegmt=True)})
    wait = RetryPolicy.parse_retry_after(headers)
    assert wait is not None and 3500 < wait <= 3600


def test_retry_after_is_never_negative() -> None:
    assert RetryPolicy.parse_retry_after(httpx.Headers({"retry-after": "-3"})) == 0.0
    assert RetryPolicy.parse_retry_after(httpx.Headers({"retry-after-ms": "-3000"})) == 0.0


def test_each_retry_is_logged_with_endpoint_reason_attempt_and_wait(caplog: pytest.LogCaptureFixture) -> None:
    err = APIStatusError("busy", status_code=503, code="unknown_error", endpoint="POST /runs")
    with caplog.at_level(logging.WARNING, logger="flora_mcp.api"):
        RetryPolicy(max_retries=3).log_retry(err, attempt=1, wait=1.5)
    [record] = caplog.records
    assert record.name == "flora_mcp.api" and record.levelno == logging.WARNING
    assert record.getMessage() == "POST /runs failed (unknown_error); retry 2/3 in 1.50s"
