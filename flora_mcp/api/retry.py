"""The one retry policy for every request to FLORA.

Retried: connection errors, timeouts, 408, 429 and 5xx, with exponential backoff and jitter, honouring
`retry-after-ms` / `Retry-After` (seconds or an HTTP date, capped). Never retried: 400, 401, 402, 403, 404, 409, 422.
Reads retry freely. A run-creating POST is retried only because it carries one idempotency key, made before the first
attempt and sent again on every retry. A POST without a key is sent again only when FLORA cannot have acted on it: the
connection failed before the request left, or FLORA refused it unread (408, 429); never after a reset, a timeout, a 5xx
or an unreadable 2xx, any of which may follow a run that was made.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass

import httpx

from flora_mcp.api.errors import APIConnectionError, APIError, APIStatusError, InvalidURLError, UnsafeURLError

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "INITIAL_RETRY_DELAY",
    "JITTER_RATIO",
    "MAX_RETRY_AFTER",
    "MAX_RETRY_DELAY",
    "RetryPolicy",
]

log = logging.getLogger("flora_mcp.api")

DEFAULT_MAX_RETRIES = 3
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
# A server asking for a longer pause than this is not waited for: the call fails and says when to try again.
MAX_RETRY_AFTER = 60.0
JITTER_RATIO = 0.25

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Statuses that mean FLORA did not act on the request, so that even a POST without an idempotency key may be resent.
NOT_ACTED_ON_STATUSES = frozenset({408, 429})
NEVER_RETRY_STATUSES = frozenset({400, 401, 402, 403, 404, 409, 422})


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry a failed request to FLORA and how long to wait first."""

    max_retries: int = DEFAULT_MAX_RETRIES
    initial_delay: float = INITIAL_RETRY_DELAY
    max_delay: float = MAX_RETRY_DELAY
    max_retry_after: float = MAX_RETRY_AFTER

    def should_retry(self, error: APIError, *, attempt: int, idempotent: bool) -> bool:
        """Whether attempt number `attempt` (0-based) that failed with `error` may be tried again."""
        if attempt >= self.max_retries or isinstance(error, UnsafeURLError | InvalidURLError):
            return False
        if isinstance(error, APIConnectionError):
            # A request that may have reached FLORA is only sent again when doing so cannot create a second run.
            return idempotent or not error.maybe_sent
        if isinstance(error, APIStatusError):
            if error.status_code in NEVER_RETRY_STATUSES:
                return False
            if error.retry_after is not None and error.retry_after > self.max_retry_after:
                return False
            if not idempotent and error.status_code not in NOT_ACTED_ON_STATUSES:
                return False
            return error.status_code in RETRYABLE_STATUSES or error.status_code >= 500
        # A malformed answer is retried like a server failure (a proxy in between may have mangled it), except after a
        # POST without a key: FLORA answered 2xx, so the run was most likely made.
        return idempotent

    def delay(self, error: APIError, *, attempt: int) -> float:
        """Seconds to wait before retrying after failed attempt `attempt` (0-based)."""
        if isinstance(error, APIStatusError) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_retry_after)
        backoff = min(self.initial_delay * 2.0**attempt, self.max_delay)
        return backoff * (1 - JITTER_RATIO * random.random())

    @staticmethod
    def parse_retry_after(headers: httpx.Headers, *, now: float | None = None) -> float | None:
        """Seconds the server asks us to wait, from `retry-after-ms` or `Retry-After` (seconds or HTTP date)."""
        raw_ms = headers.get("retry-after-ms")
        if raw_ms is not None:
            try:
                return max(float(raw_ms) / 1000.0, 0.0)
            except ValueError:
                pass
        raw = headers.get("retry-after")
        if raw is None:
            return None
        try:
            return max(float(raw), 0.0)
        except ValueError:
            pass
        parsed = email.utils.parsedate_tz(raw)
        if parsed is None:
            return None
        when = email.utils.mktime_tz(parsed)
        return max(when - (time.time() if now is None else now), 0.0)

    def log_retry(self, error: APIError, *, attempt: int, wait: float) -> None:
        """Log one retry as a warning: which request, why, which attempt, how long until it."""
        log.warning("%s failed (%s); retry %d/%d in %.2fs", error.endpoint, error.code, attempt + 1,
                    self.max_retries, wait)
