"""A call's progress as MCP wants it: one rising line from 0 to 100, whatever reports it (uploads, runs, heartbeats)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

__all__ = ["UPLOAD_SHARE", "CallProgress", "ProgressCallback"]

ProgressCallback = Callable[[float, str], Awaitable[None]]
"""Called with progress 0-100 (strictly rising) and a message, while a call waits."""
UPLOAD_SHARE = 10.0
"""The part of a call's progress (0-100) that its input uploads fill, before its runs report theirs."""


class CallProgress:
    """Forwards progress to the caller, strictly rising as MCP requires (a repeated value is dropped)."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._last = -1.0

    async def report(self, percent: float | None, message: str) -> None:
        if self._callback is None:
            return
        value = min(max(percent or 0.0, self._last + 0.01, 0.0), 100.0)
        if value <= self._last:
            return
        self._last = value
        await self._callback(round(value, 2), message)

    async def uploading(self, sent: int, total: int, message: str) -> None:
        await self.report(UPLOAD_SHARE * sent / max(total, 1), message)
