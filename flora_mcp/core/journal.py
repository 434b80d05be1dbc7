"""How the run lifecycle writes the journal: `JournalWriter`, one method per event of a run, by idempotency key.

A row is written, keyed by the call's idempotency key, before the create request is sent; it gets its run id as soon
as FLORA answers and its outputs and cost when the run ends. After a crash, a restart or a client that gave up, the run
is still found by id. Rows belong to an account (a hash of base URL and key): one key never sees another's rows.
The rows live in the store (flora_mcp/store: SQLite by default, PostgreSQL when FLORA_DATABASE_URL says so).

Only the first write, before the create leaves, may fail the call (then nothing was sent). Every write after it is
`kept`: a store that fails it (a full disk the SQLite engine could not absorb, a database gone away) or does not
answer in time (`KEPT_WAIT`) is logged, one warning while it keeps failing, and the call goes on, so the agent still
gets the run id and outputs FLORA gave, without waiting minutes on a database that is down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio

from flora_mcp.api.errors import APIError
from flora_mcp.api.models import Run, Technique
from flora_mcp.store import JournalError, Store

__all__ = ["JournalWriter", "created_fields", "finished_fields"]

T = TypeVar("T")

log = logging.getLogger("flora_mcp.core.journal")

KEPT_WAIT = 10.0
"""Seconds a store operation after the create left may take before it counts as failed: a store that is down
(PostgreSQL's pool waits 30 s for a connection) must not hold the paid run's answer for minutes."""
KEPT_WAIT_FAILING = 1.0
"""The same, while the store's last write after a create failed: it is most likely still down."""


class JournalWriter:
    """How the run lifecycle writes one account's journal: one method per event of a run, by idempotency key."""

    def __init__(self, journal: Store, account: str) -> None:
        self.journal = journal
        self.account = account
        self._failing = False

    @contextmanager
    def before_send(self) -> Iterator[None]:
        """Store work that must succeed before a create may leave (the budget check, the row, the hold): a failure
        becomes a `JournalError` saying nothing was sent, since no run leaves without its row."""
        try:
            yield
        except Exception as exc:
            if isinstance(exc, JournalError):
                raise
            message = (f"cannot write the run journal {self.journal.location} ({type(exc).__name__}: {exc}); every "
                       "run is recorded before it is sent, so nothing was sent to FLORA. Free space or fix the store "
                       "(FLORA_JOURNAL, FLORA_DATABASE_URL), then call again")
            log.warning("%s", message)
            raise JournalError(message) from exc

    @property
    def patience(self) -> float:
        """Seconds a store operation after the create left may take (see KEPT_WAIT)."""
        return KEPT_WAIT_FAILING if self._failing else KEPT_WAIT

    async def kept(self, event: str, key: str, write: Awaitable[T], *, run_id: str | None = None) -> T | None:
        """Await a store write made after the create left (a journal event, a charge, a hold ending) and return what
        it returns; one that fails is logged and swallowed (None): losing a row must never cost the agent the run it
        paid for."""
        try:
            with anyio.fail_after(self.patience):
                answer = await write
        except Exception as exc:  # TimeoutError too: the write is abandoned, the answer goes on
            level = logging.DEBUG if self._failing else logging.WARNING
            self._failing = True
            log.log(level, "cannot write the run journal %s (%s: %s) for the %s of %s: the call goes on and "
                    "its answer carries the run; flora_list_runs may show it without the change until the store is "
                    "fixed", self.journal.location, type(exc).__name__, exc, event,
                    f"run {run_id}" if run_id else f"the call keyed {key}")
            return None
        self._failing = False
        return answer

    async def submitting(self, key: str, tool: str, technique: Technique, inputs: Mapping[str, Any],
                         *, budget_session: str | None = None, hold: tuple[str, float] | None = None) -> None:
        """The create request is about to leave: the row exists before FLORA can make a run, and with `hold` (see
        `SpendLedger.share`) the run's hold too, in the same transaction."""
        await self.journal.record(idempotency_key=key, account=self.account, tool=tool,
                                  technique_id=technique.technique_id, technique_slug=technique.slug,
                                  technique_name=technique.name, inputs=inputs, run_cost=technique.run_cost,
                                  budget_session=budget_session, hold=hold)

    async def create_failed(self, key: str, exc: APIError, *, run_may_exist: bool) -> None:
        """The create gave no run: `unknown` when one may exist all the same, else `error`."""
        await self.kept("failure", key, self.journal.update(key, status="unknown" if run_may_exist else "error",
                                                            error_code=exc.code, error_message=exc.message))

    async def polled(self, key: str, run: Run) -> None:
        """A poll saw the run in a new, not final, status."""
        await self.kept("status", key, self.journal.update(key, status=run.status, progress=run.progress),
                        run_id=run.run_id)


def created_fields(run: Run) -> dict[str, Any]:
    """What a row gets when FLORA answers its create (or the run it made was recovered): the run id; written with
    the charge, if FLORA gave one, in one step (`SpendLedger.run_event`)."""
    return {"run_id": run.run_id, "status": run.status, "poll_url": run.poll_url, "progress": run.progress}


def finished_fields(run: Run) -> dict[str, Any]:
    """What a row gets when its run ends: its outputs, or its error; written with the charge and the hold's end in
    one step (`SpendLedger.run_event`)."""
    return {"status": run.status, "progress": run.progress, "outputs": [o.model_dump() for o in run.outputs],
            "error_code": run.error_code, "error_message": run.error_message}
