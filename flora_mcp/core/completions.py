"""Run completions announced by FLORA's webhooks, and the calls waiting for them.

The hosted webhook route hands each verified event to `Completions.receive`. It is recorded once (`DeliveryLog`: an
event seen before, replayed or delivered twice, is not acted on again), then published on the bus to every replica
(`publish`; in one process the process itself, with PostgreSQL its LISTEN/NOTIFY), and each replica's `wake` sets
the calls waiting on that run (`watch`) going: they fetch the run from FLORA at once instead of at their next poll.
A wake only ever shortens a wait: the run's state always comes from FLORA, so polling (rarer while a webhook is
expected, `FLORA_WEBHOOK_POLL_INTERVAL`) still ends every wait when a webhook never comes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import anyio

from flora_mcp.api.webhooks import TOLERANCE, WebhookEvent

__all__ = ["Completions", "DeliveryLog", "MemoryDeliveryLog", "Watch"]

REMEMBERED_RUNS = 10_000
"""Runs announced lately, so a call that starts waiting after its run's webhook came still finds it."""


class DeliveryLog(Protocol):
    """Where received events are recorded, so each is acted on once (shared by replicas in PostgreSQL)."""

    async def first_sight(self, event: WebhookEvent, *, now: float) -> bool:
        """Record `event`; False when it was recorded before (a duplicate or a replay)."""
        ...


class MemoryDeliveryLog:
    """The events one process received within the signature tolerance (older ones are refused by their timestamp)."""

    def __init__(self, keep: float = 2 * TOLERANCE) -> None:
        self.keep = keep
        self._seen: OrderedDict[str, float] = OrderedDict()

    async def first_sight(self, event: WebhookEvent, *, now: float) -> bool:
        while self._seen and next(iter(self._seen.values())) < now - self.keep:
            self._seen.popitem(last=False)
        if event.event_id in self._seen:
            return False
        self._seen[event.event_id] = now
        return True


class Watch:
    """One call's wait for its run's webhook."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    @property
    def fired(self) -> bool:
        return self._event.is_set()

    def fire(self) -> None:
        self._event.set()

    def rearm(self) -> None:
        """Wait for the next announcement (after the one that fired was acted on)."""
        if self._event.is_set():
            self._event = anyio.Event()

    async def wait(self) -> None:
        await self._event.wait()


class Completions:
    """This process's webhook receiving end, and the calls waiting in it.

    Args:
        callback_url: the URL FLORA calls back (the webhook route, as FLORA reaches it), sent with every create.
        log: where events are recorded once; by default this process's memory.
        publish: tells every replica a run was announced; by default wakes this process's waiters directly.
    """

    def __init__(self, callback_url: str, *, log: DeliveryLog | None = None,
                 publish: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.callback_url = callback_url
        self.log: DeliveryLog = log or MemoryDeliveryLog()
        self.publish = publish or self._wake_here
        self._waiting: dict[str, set[Watch]] = {}
        self._announced: OrderedDict[str, None] = OrderedDict()
        self.received = 0
        """Events taken (first sight)."""
        self.repeated = 0
        """Events seen before and not acted on again."""
        self.wakes = 0
        """Announcements that reached this process (from any replica)."""

    async def receive(self, event: WebhookEvent, *, now: float) -> bool:
        """Take a verified event: record it, tell every replica. False when it was seen before (nothing done)."""
        if not await self.log.first_sight(event, now=now):
            self.repeated += 1
            return False
        self.received += 1
        await self.publish(event.run_id)
        return True

    async def _wake_here(self, run_id: str) -> None:
        self.wake(run_id)

    def wake(self, run_id: str) -> None:
        """A run was announced (here or on another replica): every call waiting on it here goes on at once."""
        self.wakes += 1
        self._announced[run_id] = None
        self._announced.move_to_end(run_id)
        while len(self._announced) > REMEMBERED_RUNS:
            self._announced.popitem(last=False)
        for watch in self._waiting.get(run_id, ()):
            watch.fire()

    @contextmanager
    def watch(self, run_id: str) -> Iterator[Watch]:
        """Wait for announcements of `run_id` while the block runs; fired at once if one came already."""
        watch = Watch()
        if run_id in self._announced:
            watch.fire()
        self._waiting.setdefault(run_id, set()).add(watch)
        try:
            yield watch
        finally:
            waiting = self._waiting.get(run_id)
            if waiting is not None:
                waiting.discard(watch)
                if not waiting:
                    del self._waiting[run_id]

    @property
    def waiting(self) -> int:
        """Calls waiting on a webhook in this process."""
        return sum(len(watches) for watches in self._waiting.values())
