"""Finding the runs whose create answer was lost, and keeping every run FLORA made: nothing paid goes missing.

A create whose answer never came (a 5xx or a dropped connection after the request left, an "already used" key on a
retry, a process killed mid-request) leaves a journal row with no run id. FLORA cannot be asked "which run has this
idempotency key", so the run is found among the technique's runs (`GET /technique-runs`, newest first):

- a candidate is a run of the technique, created within RECOVERY_WINDOW of the lost rows, that no journal row claims
  (any account: FLORA lists only this key's runs, so a claimed id is a row of this key's, whoever wrote it);
- the lost rows are every row of this key without a run id, `submitting` or `unknown`, of any account on the key
  (hosted principals share one key and have accounts of their own), except creates still in flight in this process,
  which are waited for first so concurrent lost answers are matched together;
- N lost rows and N candidates: matched in creation order (rows by when they were written, which is before their
  request left; runs by FLORA's `created_at`). Anything else is ambiguous: nothing is guessed, and the candidates are
  named in the row's error message and in the result;
- every candidate left unattributed is adopted: written as an unclaimed row (`idempotency_key` `adopted-<run id>`) of
  the key's own account, so its paid outputs stay listed and readable. Who may see an adopted run: its run cannot be
  told apart from any other principal's on a shared key, so it goes to the key's account, which a hosted principal
  never is (theirs is `<key account>/<principal>`); only the key's operator (flora-mcp run with that key, stdio or
  the CLI) lists it. Without hosting, and in per-user-key mode, the key's account is the caller's own.

The same recovery reconciles rows left `submitting`/`unknown` by a process that died: at start-up and on
`flora_list_runs`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import anyio

from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import APIError
from flora_mcp.api.models import Run, Technique
from flora_mcp.core.results import ToolResult
from flora_mcp.core.tool_names import GET_RUN, LIST_RUNS
from flora_mcp.store import JournalEntry, Store

__all__ = ["ADOPTED_PREFIX", "NOT_IDENTIFIED", "Found", "Recovery", "key_account"]

log = logging.getLogger("flora_mcp.core.recovery")

RECOVERY_WINDOW = 600.0
"""Seconds either side of a lost row's time within which a run may be its own (FLORA's clock is not ours)."""
RECOVERY_PAGE = 50
MAX_PAGES = 4
SETTLE_POLL = 0.05
NOT_IDENTIFIED = "run_not_identified"
"""The error code of a lost row whose candidates were adopted: it is not matched again (they are claimed now)."""
ADOPTED_PREFIX = "adopted-"
"""The idempotency key of a row for a run flora-mcp found but cannot attribute to a call."""


def key_account(account: str) -> str:
    """The account of the FLORA key itself: a hosted principal's account is `<key account>/<principal>`."""
    return account.split("/", 1)[0]


class Found:
    """What recovery knows of one lost create: its run, or the candidates it could not choose between."""

    def __init__(self, run: Run | None = None, candidates: Iterable[str] = (), *, matched: int = 0) -> None:
        self.run = run
        self.candidates = list(candidates)
        self.matched = matched
        """How many lost rows got their run in the same step (this one's and others')."""

    def explain(self, result: ToolResult) -> ToolResult:
        """`result` (of a create with no run) naming the runs it could be, when there were several."""
        if self.candidates:
            named = ", ".join(f'"{run_id}"' for run_id in self.candidates)
            result.error_message = (f"{result.error_message} FLORA has {len(self.candidates)} runs of this technique "
                                    f"it could be, not told apart: {named}.")
            result.next_step = (f"Do not call the tool again. Call {GET_RUN} with each run_id ({named}) to see which "
                                f"is this call's; {LIST_RUNS} lists them as unclaimed runs.")
        return result


class Recovery:
    """Recovers lost creates of one key's runs; one per RunManager (it knows this process's creates in flight)."""

    def __init__(self, client: FloraClient, journal: Store, account: str, *, settle_timeout: float) -> None:
        self.client = client
        self.journal = journal
        self.key_account = key_account(account)
        self.settle_timeout = settle_timeout
        self._in_flight: dict[str, str] = {}  # idempotency key -> technique id, while its create request is out
        self._lock = anyio.Lock()
        self._matched: dict[str, Run] = {}  # runs matched to other lost rows, for their own recovery to take
        self._ambiguous: dict[str, list[str]] = {}  # the same, for rows whose candidates could not be told apart

    def sending(self, key: str, technique_id: str) -> None:
        """A create request is leaving (until `answered`)."""
        self._in_flight[key] = technique_id

    def answered(self, key: str) -> None:
        """The create returned or raised: it is no longer in flight."""
        self._in_flight.pop(key, None)

    async def find(self, technique: Technique, key: str, exc: APIError) -> Found:
        """The run the lost create of `key` (which failed with `exc`) made, once concurrent creates of the technique
        have settled; FLORA failing the lookup too is logged, and the next `flora_list_runs` tries again."""
        log.warning("create for %s answered %s; looking for the run it may have made", technique.name, exc.code)
        try:
            return await self._find(technique, key)
        except APIError as lookup:
            log.warning("recovery lookup failed: %s; flora_list_runs tries again", lookup.message)
            return Found()

    async def _find(self, technique: Technique, key: str) -> Found:
        with anyio.move_on_after(self.settle_timeout):
            while technique.technique_id in self._in_flight.values():
                await anyio.sleep(SETTLE_POLL)
        async with self._lock:
            if key in self._matched:
                return Found(self._matched.pop(key))
            if key in self._ambiguous:
                return Found(candidates=self._ambiguous.pop(key))
            entry = await self.journal.get_by_key(key)
            if entry is not None and entry.run_id:  # matched by another process, or by an earlier reconcile
                return Found(await self.client.get_run(entry.run_id, technique_ref=technique.ref))
            return await self._match(technique, key)

    async def reconcile(self) -> int:
        """Match or adopt the runs of every row left without a run id (a process killed mid-create); how many rows
        got their run. FLORA failing is logged, never raised: the next `flora_list_runs` tries again."""
        matched = 0
        async with self._lock:
            rows = await self._lost_rows(None)
            for technique_id in dict.fromkeys(row.technique_id for row in rows):
                sample = next(row for row in rows if row.technique_id == technique_id)
                technique = Technique(technique_id=technique_id, slug=sample.technique_slug,
                                      name=sample.technique_name, run_cost=sample.run_cost, inputs=[])
                try:
                    found = await self._match(technique, None)
                except APIError as exc:
                    log.warning("reconciling runs of %s left without a run id: %s", sample.technique_name,
                                exc.message)
                    continue
                matched += found.matched
        if matched:
            log.info("reconciled %d journal row(s) left without a run id", matched)
        return matched

    async def _lost_rows(self, technique_id: str | None) -> list[JournalEntry]:
        rows = await self.journal.lost_rows(self.key_account, technique_id)
        return [row for row in rows if row.idempotency_key not in self._in_flight]

    async def _match(self, technique: Technique, key: str | None) -> Found:
        """Match the technique's lost rows to its unclaimed runs; `key`'s run (None: reconciling, which counts rows)."""
        lost = await self._lost_rows(technique.technique_id)
        if not lost:
            return Found()
        earliest = min(row.created_at for row in lost) - RECOVERY_WINDOW
        candidates = await self._candidates(technique, earliest)
        if not candidates:
            return Found()
        chosen: Run | None = None
        if len(candidates) == len(lost):
            for row, run in zip(lost, candidates, strict=True):
                await self.journal.update(row.idempotency_key, run_id=run.run_id, status=run.status,
                                          poll_url=run.poll_url, progress=run.progress, error_code=None,
                                          error_message=None)
                if row.idempotency_key == key:
                    chosen = run
                elif key is not None:
                    self._matched[row.idempotency_key] = run
            log.warning("matched %d lost create(s) of %s to FLORA's runs in creation order", len(lost),
                        technique.name or technique.technique_id)
            return Found(chosen, matched=len(lost))
        ids = [run.run_id for run in candidates]
        log.warning("%d lost create(s) of %s and %d unclaimed run(s) (%s): not guessing; the runs are kept as "
                    "unclaimed journal rows", len(lost), technique.name or technique.technique_id, len(ids),
                    ", ".join(ids))
        for row in lost:
            await self.journal.update(row.idempotency_key, status="unknown", error_code=NOT_IDENTIFIED,
                                      error_message=f"run not identified; unclaimed candidates: {', '.join(ids)}")
            if row.idempotency_key != key:
                self._ambiguous[row.idempotency_key] = ids
        tool = lost[0].tool
        for run in candidates:
            await self.journal.adopt(account=self.key_account, key=f"{ADOPTED_PREFIX}{run.run_id}", tool=tool,
                                     technique_id=technique.technique_id, technique_slug=technique.slug,
                                     technique_name=technique.name or technique.technique_id, run_id=run.run_id,
                                     status=run.status, poll_url=run.poll_url, run_cost=technique.run_cost)
        return Found(candidates=ids)

    async def _candidates(self, technique: Technique, earliest: float) -> list[Run]:
        """The technique's runs since `earliest` that no journal row claims, oldest first."""
        runs: list[Run] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page, cursor = await self.client.list_technique_runs(technique_id=technique.technique_id,
                                                                 limit=RECOVERY_PAGE, cursor=cursor)
            runs += page
            if cursor is None or any(_seconds(r.created_at) < earliest for r in page if r.created_at is not None):
                break
        latest = time.time() + RECOVERY_WINDOW
        near = [r for r in runs if r.created_at is None or earliest <= _seconds(r.created_at) <= latest]
        claimed = await self.journal.claimed([r.run_id for r in near])
        unclaimed = [r for r in near if r.run_id not in claimed]
        # FLORA lists newest first: reversed, ties in created_at keep FLORA's order.
        unclaimed.reverse()
        return sorted(unclaimed, key=lambda r: _seconds(r.created_at) if r.created_at is not None else 0.0)


def _seconds(created_at: float) -> float:
    # FLORA's timestamp unit is undocumented: milliseconds or seconds since the epoch, judged by magnitude.
    return created_at / 1000.0 if created_at > 1e11 else created_at
