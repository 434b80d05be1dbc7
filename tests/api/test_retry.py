from __future__ import annotations

import email.utils

import httpx
import pytest

from flora_mcp.api.errors import APIConnectionError, APIResponseError, APIStatusError, APITimeoutError
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
