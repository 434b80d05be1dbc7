"""When to poll a run next: as late as possible, as early as useful, never more often than FLORA allows.

The first poll waits for FLORA's `estimated_seconds` when it gives one. Later polls aim at the moment the run should
finish, estimated from how fast `progress` has been rising, and never come sooner than `min_interval` (FLORA asks for
2-5 s between polls) nor later than `max_interval`, so a wrong estimate costs at most one long gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flora_mcp.api.client import MIN_POLL_INTERVAL

__all__ = ["MAX_POLL_INTERVAL", "PollScheduler"]

MAX_POLL_INTERVAL = 10.0
# Aim slightly past the estimated finish, so that the poll lands on a completed run rather than just before it (a poll
# that comes too early costs a whole interval more). The margin is relative, but capped: past a few seconds of run
# time, a fixed half second is enough and keeps the result within a second of the run's end.
FINISH_MARGIN = 0.15
MAX_FINISH_MARGIN = 0.5


@dataclass
class PollScheduler:
    """Decides the delay before each poll from what the run has told us so far."""

    min_interval: float = MIN_POLL_INTERVAL
    max_interval: float = MAX_POLL_INTERVAL
    _samples: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.max_interval = max(self.max_interval, self.min_interval)

    def observe(self, now: float, progress: float | None) -> None:
        """Record the run's progress (0-100) as seen at monotonic time `now`."""
        if progress is not None:
            self._samples.append((now, progress))
            del self._samples[:-8]

    def first_delay(self, estimated_seconds: float | None) -> float:
        """Delay before the first poll after the run was created."""
        if estimated_seconds is not None and estimated_seconds > 0:
            return self._clamp(_past(estimated_seconds))
        return self.min_interval

    def next_delay(self) -> float:
        """Delay before the next poll, from the progress rate seen so far."""
        remaining = self._estimated_remaining()
        if remaining is None:
            return self.min_interval
        return self._clamp(_past(remaining))

    def _estimated_remaining(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (t0, p0), (t1, p1) = self._samples[0], self._samples[-1]
        if t1 <= t0 or p1 <= p0:
            return None
        rate = (p1 - p0) / (t1 - t0)
        return max(100.0 - p1, 0.0) / rate

    def _clamp(self, delay: float) -> float:
        return min(max(delay, self.min_interval), self.max_interval)


def _past(seconds: float) -> float:
    """A moment just after `seconds` from now."""
    return seconds + min(seconds * FINISH_MARGIN, MAX_FINISH_MARGIN)
