"""The run lifecycle: validate, cap the cost, create once, wait with progress, stop in time, resume.

One call makes one idempotency key before anything is sent and records the run in the journal before the create
request leaves; the key is reused on every retry. An "already used" answer, a 5xx or a lost connection after the
request left are met by recovering the run (core/recovery.py), never by submitting again under a new key. Waiting
stops after `max_wait` seconds with the run id in hand.

The money is `SpendLedger`'s (core/budget.py), the journal is written through `JournalWriter`, one method per event,
and the call's `CallPhase` is marked as creates leave and runs appear, for the translator to classify any failure.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from typing import Any

import anyio

from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import APIError, FloraError, IdempotencyError
from flora_mcp.api.models import Run, Technique
from flora_mcp.config import Settings
from flora_mcp.core.budget import Reservation, SpendLedger
from flora_mcp.core.catalog import MAX_MULTIPLE_VALUES, TechniqueTool
from flora_mcp.core.combinations import expand_runs, run_count
from flora_mcp.core.completions import Completions, Watch
from flora_mcp.core.confirm import Confirmer
from flora_mcp.core.confirm import gate as confirm_gate
from flora_mcp.core.journal import JournalWriter, created_fields, finished_fields
from flora_mcp.core.local_files import FilePolicy, allowed_folders
from flora_mcp.core.media_in import MediaInputs, Prepared
from flora_mcp.core.polling import PollScheduler
from flora_mcp.core.progress import CallProgress, ProgressCallback
from flora_mcp.core.recovery import Found, Recovery
from flora_mcp.core.results import InputUpload, ToolResult
from flora_mcp.core.tool_names import GET_RUN
from flora_mcp.core.translator import CallPhase, combined, from_failure, from_run, refusal
from flora_mcp.store import JournalEntry, JournalError, Store

__all__ = ["ProgressCallback", "RunManager", "account_id"]

log = logging.getLogger("flora_mcp.core.runs")

RootsProvider = Callable[[], Awaitable[Sequence[str] | None]]
"""The client's MCP roots (`file://` URIs), asked only when a call names a local file; None when it offers none."""

# Clients that reset their timeout on progress (TypeScript SDK, Claude Code) need a notification well within it.
HEARTBEAT = 1.0
DUE_WITHIN = 0.001
"""A wait this close to its end is over: no heartbeat for the last millisecond of it."""
DAY = 86_400.0
"""Seconds in a day: FLORA_PRINCIPAL_BUDGET counts from midnight UTC."""
LEASE_MARGIN = 900.0
"""Seconds a call's reservation outlasts FLORA_MAX_WAIT (confirmation, uploads), before it lapses as a dead one's."""


def account_id(base_url: str, api_key: str) -> str:
    """Whose runs these are: a hash of base URL and key, never the key itself."""
    return hashlib.sha256(f"{base_url}\0{api_key}".encode()).hexdigest()[:16]


class RunManager:
    """Runs techniques for one journal account: create once, wait, resume; the spend is in `ledger`.

    Args:
        account: whose runs these are in the journal.
        journal_only: resume only runs this account's journal holds, never one FLORA alone knows (hosted mode,
            where principals share one FLORA key and must not reach each other's runs by id).
        completions: FLORA's webhooks (hosted mode with FLORA_PUBLIC_URL and FLORA_WEBHOOK_SECRET): runs are created
            with its callback URL, and a wait goes on when the run's webhook comes, polling only as a safety net.
    """

    def __init__(self, client: FloraClient, journal: Store, settings: Settings, *, account: str,
                 media: MediaInputs | None = None, local_files: bool = True, journal_only: bool = False,
                 completions: Completions | None = None) -> None:
        self.client = client
        self.completions = completions
        self.media = media
        """Uploads local files and data: values given as media inputs; None passes every value through."""
        self.local_files = local_files
        """False in hosted mode: the server's disk is not the user's."""
        self.journal = journal
        self.settings = settings
        self.account = account
        self.journal_only = journal_only
        # One budget session per process with a store of its own; with a shared one, the principal's on every replica.
        scope = account if journal.shared else f"{account}/{uuid.uuid4().hex}"
        self.ledger = SpendLedger(journal, account=account, scope=scope, max_cost_per_call=settings.max_cost_per_call,
                                  session_budget=settings.session_budget, daily_budget=settings.principal_budget,
                                  lease=settings.max_wait + LEASE_MARGIN)
        # A create in flight is waited for at most its own time: every attempt's timeout and back-off.
        self.recovery = Recovery(client, journal, account,
                                 settle_timeout=settings.request_timeout * (settings.max_retries + 1) + 30.0)
        self._record = JournalWriter(journal, account)
        self._stopping = False
        self._wait_scopes: set[anyio.CancelScope] = set()

    async def session_spend(self) -> float:
        """USD FLORA charged for this session's runs."""
        return await self.ledger.session_spend()

    async def _spend_to_show(self) -> float:
        """The session's spend, for a confirmation to show; not read (one store round trip less) when none is asked."""
        return await self.session_spend() if self.settings.confirm_above is not None else 0.0

    async def held(self) -> float:
        """USD the session budget counts besides what was charged: calls being submitted, runs not charged yet."""
        return (await self.ledger.totals())[1]

    # A technique call --------------------------------------------------------------------------------------------

    async def run_tool(self, tool: TechniqueTool, arguments: Mapping[str, Any] | None,
                       *, progress: ProgressCallback | None = None, phase: CallPhase | None = None,
                       confirm: Confirmer | None = None, roots: RootsProvider | None = None) -> ToolResult:
        """Validate, cap, confirm, upload local inputs, submit and wait for one technique call (one run per value of
        a multiple input).

        `phase` is marked as create requests leave and runs appear, for the caller to classify a failure by.
        `confirm` asks the person when FLORA_CONFIRM_ABOVE says the call needs it (core/confirm.py).
        `roots` gives the client's MCP roots, which then are the folders local files may come from.
        """
        result = await self._run_tool(tool, arguments, progress, phase or CallPhase(), confirm, roots)
        if result.session_spend is None:  # not read as the call's reservation ended (a refusal, a store failing)
            result.session_spend = await self._spend_so_far()
        return result

    async def _spend_so_far(self) -> float | None:
        """The session's spend for a result, or None when the store cannot say (the result goes without it)."""
        try:
            with anyio.fail_after(self._record.patience):
                return round(await self.session_spend(), 6)
        except Exception as exc:
            log.warning("cannot read the session's spend from %s: %s", self.journal.location, exc)
            return None

    async def _run_tool(self, tool: TechniqueTool, arguments: Mapping[str, Any] | None,
                        progress: ProgressCallback | None, phase: CallPhase, confirm: Confirmer | None,
                        roots: RootsProvider | None) -> ToolResult:
        technique = tool.technique
        args = tool.normalize(arguments)
        problems = tool.validate(args)
        media = Prepared(args)  # local files and data: values, checked and opened here (no request yet)
        if self.media is not None:
            prepared = await self.media.prepare(technique, args, lambda: self.file_policy(roots))
            if isinstance(prepared, list):
                problems = sorted([*problems, *prepared], key=lambda problem: problem.field)
            elif problems:
                prepared.close()
            else:
                media = prepared
        if problems:
            count = len(problems)
            return refusal(tool.name, technique, f"{count} invalid argument{'s' * (count != 1)}: "
                           + ", ".join(p.field for p in problems), problems)
        with closing(media):
            count = run_count(args)
            if count > MAX_MULTIPLE_VALUES:
                return refusal(tool.name, technique, f"{count} runs requested; at most {MAX_MULTIPLE_VALUES} per call")
            # The price is admitted before any byte is uploaded: a call over a cap sends nothing.
            with self._record.before_send():
                admitted = await self.ledger.admit(tool.name, technique, count, day_start=time.time() // DAY * DAY)
            if isinstance(admitted, ToolResult):
                return admitted
            spent = None
            try:
                result = await self._admitted(tool, args, media, count, admitted, progress, phase, confirm)
            finally:
                if not admitted.closed:  # a single run's last event ends it (`_finish`)
                    with anyio.CancelScope(shield=True):
                        spent = await self._record.kept("reservation's end", admitted.reservation_id,
                                                        self.ledger.close(admitted))
            if spent is not None:  # read with the reservation's end: one store round trip less
                result.session_spend = round(spent, 6)
            return result

    async def _admitted(self, tool: TechniqueTool, args: dict[str, Any], media: Prepared, count: int,
                        admitted: Reservation, progress: ProgressCallback | None, phase: CallPhase,
                        confirm: Confirmer | None) -> ToolResult:
        technique = tool.technique
        # After the caps (a refused call is not worth asking about), before anything is sent (an upload too); held
        # meanwhile.
        stopped = await confirm_gate(self.settings.confirm_above, tool.name, technique, args, count,
                                     await self._spend_to_show(), confirm)
        if stopped is not None:
            return stopped
        reporter = CallProgress(progress)
        uploads: list[InputUpload] = []
        if self.media is not None and media.needs_upload:
            try:
                args, uploads = await self.media.upload(media, reporter.uploading)
            except FloraError as exc:
                return from_failure(tool.name, exc, phase, technique)
        combos = expand_runs(args)
        if len(combos) == 1:
            result = await self._run_one(tool, combos[0], reporter, admitted, phase, only=True)
        else:
            result = await self._run_many(tool, combos, reporter, admitted, phase)
        result.uploads = uploads
        return result

    async def file_policy(self, roots: RootsProvider | None) -> FilePolicy:
        """Which local files a call may read: from the client's roots when it offers them (see `allowed_folders`)."""
        offered = await roots() if roots is not None and self.local_files else None  # hosted: no need to ask
        folders = allowed_folders(offered, self.settings.input_dirs)
        return FilePolicy(tuple(folders), allow_local=self.local_files, max_file_bytes=self.settings.max_upload_bytes,
                          max_data_bytes=self.settings.max_data_url_bytes)

    async def _run_many(self, tool: TechniqueTool, combos: list[dict[str, str]],
                        overall: CallProgress, reservation: Reservation, phase: CallPhase) -> ToolResult:
        results: list[ToolResult | None] = [None] * len(combos)
        shares = [0.0] * len(combos)

        async def one(index: int, inputs: dict[str, str]) -> None:
            async def share(percent: float, message: str) -> None:
                shares[index] = percent
                await overall.report(sum(shares) / len(shares), f"{len(combos)} runs: {message}")

            run_phase = phase.for_run()
            try:
                results[index] = await self._run_one(tool, inputs, CallProgress(share), reservation, run_phase)
            except JournalError as exc:  # this run was not sent; the others go on, and their outputs reach the agent
                results[index] = from_failure(tool.name, exc, run_phase, tool.technique)

        async with anyio.create_task_group() as tg:
            for index, inputs in enumerate(combos):
                tg.start_soon(one, index, inputs)
        return combined(tool.name, [r for r in results if r is not None])

    async def _run_one(self, tool: TechniqueTool, inputs: dict[str, str], progress: CallProgress,
                       reservation: Reservation, phase: CallPhase, *, only: bool = False) -> ToolResult:
        technique = tool.technique
        key = f"flora-mcp-{uuid.uuid4().hex}"
        await progress.report(0.0, "submitting")
        started = time.time()
        run: Run | None = None
        answered_at: float | None = None  # when the create's answer came (not set for a run recovery found)
        failure: APIError | None = None
        found = Found()
        # Shielded from the row on: once it holds the budget, the create leaves, and once the request may be out, the
        # client giving up must not cost us the run id.
        with anyio.CancelScope(shield=True):
            # In flight from its row on (marked before it is written): a concurrent lost answer's recovery waits for
            # this create instead of counting its row, whose request has not left yet, as one more lost create.
            self.recovery.sending(key, technique.technique_id)
            try:
                with self._record.before_send():  # the row and the run's hold, in one step
                    await self._record.submitting(key, tool.name, technique, inputs,
                                                  budget_session=reservation.session,
                                                  hold=self.ledger.share(reservation))
                phase.sending()
                run = await self.client.create_run(
                    technique, inputs, idempotency_key=key, workspace_id=self.settings.workspace_id,
                    callback_url=self.completions.callback_url if self.completions is not None else None)
                answered_at = anyio.current_time()
            except APIError as exc:
                self.recovery.answered(key)
                failure = exc
                # The one rule (APIError.outcome_unknown): a 5xx or a lost connection after the request left, like
                # an "already used" key, may have made a paid run: the hold stays, and the run is looked for.
                lost = exc.outcome_unknown or isinstance(exc, IdempotencyError)
                await self._record.create_failed(key, exc, run_may_exist=lost)
                if lost:
                    found = await self.recovery.find(technique, key, exc)
                    run = found.run
                else:
                    phase.nothing_created()
                    await self._record.kept("hold's end", key, self.ledger.release(key))  # FLORA refused: no charge
            finally:
                self.recovery.answered(key)
            if run is not None:
                phase.created(run.run_id)
                # The run id, and a charge FLORA gave already, in one step.
                await self._record.kept("run id", key, self.ledger.run_event(key, run.charged_cost, ended=False,
                                                                             **created_fields(run)),
                                        run_id=run.run_id)
        if run is None:
            assert failure is not None  # a create either returns its run or raises
            return found.explain(from_failure(tool.name, failure, phase, technique))
        log.info("run %s of %s submitted", run.run_id, tool.name)
        # The call's only run ends its reservation with its last event: one store step for both. (Not one of
        # several: a sibling may not have taken its share of the reservation yet.)
        return await self._wait(tool.name, technique, run, key, progress, phase, started=started,
                                max_wait=self.settings.max_wait, closing=reservation if only else None,
                                answered_at=answered_at)

    # Waiting ---------------------------------------------------------------------------------------------------

    async def _wait(self, tool: str, technique: Technique | None, run: Run, key: str | None, progress: CallProgress,
                    phase: CallPhase, *, started: float, max_wait: float, closing: Reservation | None = None,
                    answered_at: float | None = None) -> ToolResult:
        # A run flora-mcp created (it has a key) was given the callback URL: its webhook will say when it ended, and
        # polling is the safety net. Any other run is polled as usual (a webhook still cuts the wait short).
        announced = self.completions is not None and key is not None
        interval = self.settings.poll_interval
        if announced:
            interval = max(interval, self.settings.webhook_poll_interval)
        scheduler = PollScheduler(min_interval=interval)
        ref = technique.ref if technique else None
        poll_url = run.poll_url
        await progress.report(run.progress, run.status)
        if run.is_terminal:
            return await self._finish(tool, technique, run, key, closing)
        # Each poll is due a delay after the answer before it (the create's, then each poll's), not after the
        # journal writes and progress that followed that answer: they happen during the wait.
        answered_at = anyio.current_time() if answered_at is None else answered_at
        scheduler.observe(answered_at, run.progress)
        due = answered_at + scheduler.first_delay(run.estimated_seconds)
        last_status = run.status  # the journal is written when the status changes, not on every poll
        with anyio.move_on_after(max_wait) as scope, self._cut_short(scope), self._watch(run.run_id) as watch:
            while True:
                await self._sleep_with_heartbeat(due, progress, run, watch)
                watch.rearm()
                try:
                    run = await self.client.get_run(run.run_id, technique_ref=ref, poll_url=poll_url)
                except APIError as exc:
                    return from_failure(tool, exc, phase, technique)
                answered_at = anyio.current_time()
                poll_url = run.poll_url or poll_url
                scheduler.observe(answered_at, run.progress)
                if key and run.status != last_status and not run.is_terminal:
                    await self._record.polled(key, run)
                last_status = run.status
                await progress.report(run.progress, run.status)
                if run.is_terminal:
                    return await self._finish(tool, technique, run, key, closing)
                if time.time() - started >= self.settings.run_timeout:
                    return from_run(tool, run, technique, timed_out=True)
                due = answered_at + scheduler.next_delay()
        return from_run(tool, run, technique)

    def stop_waiting(self) -> None:
        """End every wait now, and every later one at once: each call returns its run id (server shutdown)."""
        self._stopping = True
        for scope in self._wait_scopes:
            scope.cancel()

    @contextmanager
    def _cut_short(self, scope: anyio.CancelScope) -> Iterator[None]:
        if self._stopping:
            scope.cancel()
        self._wait_scopes.add(scope)
        try:
            yield
        finally:
            self._wait_scopes.discard(scope)

    @contextmanager
    def _watch(self, run_id: str) -> Iterator[Watch]:
        if self.completions is None:
            yield Watch()  # never fired: the wait is all polling
            return
        with self.completions.watch(run_id) as watch:
            yield watch

    async def _sleep_with_heartbeat(self, due: float, progress: CallProgress, run: Run, watch: Watch) -> None:
        """Sleep until `due` (anyio's clock), or until the run's webhook comes; progress every HEARTBEAT meanwhile."""
        # The next beat counts from when the last one was handled: a client slow to take one gets the next a
        # second later, not the ones it missed in a burst.
        handled = anyio.current_time()
        while not watch.fired and due - handled > DUE_WITHIN:
            beat = min(due, handled + HEARTBEAT)
            with anyio.move_on_after(beat - anyio.current_time()):
                await watch.wait()
            if due - beat <= DUE_WITHIN or watch.fired:
                return
            await progress.report(run.progress, f"{run.status} (waiting)")
            handled = anyio.current_time()

    async def _finish(self, tool: str, technique: Technique | None, run: Run, key: str | None,
                      closing: Reservation | None = None) -> ToolResult:
        spent = None
        if key:  # the outputs, the charge, the hold's end (and `closing`'s, with the session's spend): one step
            spent = await self._record.kept("outputs", key, self.ledger.run_event(
                key, run.charged_cost, ended=True, closing=closing, **finished_fields(run)), run_id=run.run_id)
        result = from_run(tool, run, technique)
        result.session_spend = None if spent is None else round(spent, 6)
        return result

    # Resuming, and what the journal says -----------------------------------------------------------------------

    async def resume(self, run_id: str, *, wait_seconds: float | None = None,
                     technique_for: Callable[[str | None], Technique | None] = lambda _: None,
                     progress: ProgressCallback | None = None, tool: str = GET_RUN,
                     phase: CallPhase | None = None) -> ToolResult:
        """Pick a run up again by id, from the journal when it knows the run, else from FLORA alone."""
        phase = phase or CallPhase()
        entry = await self.journal.get(self.account, run_id)
        if entry is None and self.journal_only:
            return refusal(tool, None, f"No run {run_id} among this caller's runs.", code="run_not_found",
                           next_step="flora_list_runs lists the runs you started.")
        phase.run_known(run_id)
        technique = technique_for(entry.technique_id if entry else None)
        if technique is None and entry is not None:
            technique = Technique(technique_id=entry.technique_id, slug=entry.technique_slug,
                                  name=entry.technique_name, inputs=[])
        try:
            run = await self.client.get_run(run_id, technique_ref=technique.ref if technique else None,
                                            poll_url=entry.poll_url if entry else None)
        except APIError as exc:
            return from_failure(tool, exc, phase, technique)
        if technique is None:
            technique = technique_for(run.technique_id)
        key = entry.idempotency_key if entry else None
        if key:
            await self._record.polled(key, run)
        wait = self.settings.max_wait if wait_seconds is None else min(max(wait_seconds, 0.0), self.settings.max_wait)
        reporter = CallProgress(progress)
        if run.is_terminal or wait <= 0:
            if run.is_terminal:
                result = await self._finish(tool, technique, run, key)
            else:
                result = from_run(tool, run, technique)
            await reporter.report(run.progress, run.status)
        else:
            started = entry.created_at if entry else time.time()
            result = await self._wait(tool, technique, run, key, reporter, phase, started=started, max_wait=wait)
        result.session_spend = await self._spend_so_far()
        return result

    async def recent(self, limit: int = 20, status: str | None = None) -> list[JournalEntry]:
        """This account's latest journal entries, newest first, after reconciling rows a lost create left."""
        await self.reconcile()
        return await self.journal.recent(self.account, limit=limit, status=status)

    async def reconcile(self) -> int:
        """Find on FLORA the runs of rows left `submitting`/`unknown` (a process killed mid-create, an answer
        lost): matched, or kept as unclaimed rows (core/recovery.py); how many rows got their run."""
        try:
            return await self.recovery.reconcile()
        except Exception:
            log.exception("reconciling the run journal failed; flora_list_runs tries again")
            return 0

    async def spend(self) -> dict[str, Any]:
        """The session's spend, holds and caps, and the all-time spend per technique."""
        return await self.ledger.report(await self.journal.spend(self.account))

