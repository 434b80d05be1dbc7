"""`Store`: the one storage interface, async, whatever the engine.

Every operation is one transaction made of SQL steps (`Step`), written once here in the SQL both engines speak (`?`
placeholders; the PostgreSQL engine turns them into its own). An engine only runs a list of steps atomically and in
order (`_transact`); the journal, the budget, MCP task state and remembered uploads are all built on that.

Text written to the journal passes the log redaction first: no key reaches the database.
"""

from __future__ import annotations

import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flora_mcp.logs import redact, redact_value
from flora_mcp.store.records import UPDATABLE, Admission, JournalEntry, JournalStatus, RememberedAsset, StoredTask

__all__ = ["EPSILON", "SESSION_IDLE", "Step", "Store"]

EPSILON = 1e-9
"""Prices are sums of floats: a call that costs exactly what is left is within it."""
SESSION_IDLE = 3600.0
"""Seconds without a call after which a budget session ends and the next call starts a new one."""
SWEEP_EVERY = 60.0
"""Seconds between deletions of lapsed reservations by one store: what is left never counts them anyway (a hold counts
only while it is live), so the sweep is tidying, not one more statement in every budget check."""
_TERMINAL_TASK = ("completed", "failed", "cancelled")

ENTRY_COLUMNS = ("idempotency_key, account, run_id, tool, technique_id, technique_slug, technique_name, status, "
                 "progress, inputs, outputs, charged_cost, run_cost, poll_url, error_code, error_message, created_at, "
                 "updated_at")
TASK_COLUMNS = ("task_id, account, shape, tool, status, message, created_at, updated_at, ttl_ms, poll_ms, run_ids, "
                "result")
_LIVE_HOLD = "(expires_at IS NULL OR expires_at > ?)"


@dataclass(frozen=True)
class Step:
    """One SQL statement of a transaction, and whether its rows are wanted."""

    sql: str
    params: Sequence[Any] = ()
    rows: bool = False


class Store(ABC):
    """Runs, spend, budget reservations, MCP tasks and remembered uploads, in one database.

    `location` names it in messages (a file, or a URL without its password); `shared` says whether other processes
    (replicas) use the same rows, so a budget session is the principal's across them (see `admit`).
    """

    location: str
    shared: bool = False
    _swept_at: float = 0.0

    @property
    def path(self) -> str:
        """The location; the name the journal always had."""
        return self.location

    @property
    def in_memory(self) -> bool:
        """Whether rows live in this process only: asked for, or since the file could not be written."""
        return False

    async def open(self) -> None:  # noqa: B027 - SQLite opens in its constructor: nothing to do by default
        """Connect and bring the schema up to date, when the engine does that apart from its constructor.

        Raises:
            JournalError: the database cannot be opened; one line naming it and the fix.
        """

    @abstractmethod
    async def _transact(self, steps: Sequence[Step]) -> list[list[tuple[Any, ...]]]:
        """Run `steps` in one transaction, in order after every earlier call; the rows of each step that wants them
        (an empty list for the others)."""

    def _lock_account(self, account: str) -> Step | None:
        """A step that serializes budget checks of one account across processes, when the engine needs one."""
        return None

    @abstractmethod
    async def aclose(self) -> None:
        """Finish every write and close the database."""

    async def _rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return (await self._transact([Step(sql, params, rows=True)]))[0]

    async def _write(self, sql: str, *params: Any) -> None:
        await self._transact([Step(sql, params)])

    # The journal ------------------------------------------------------------------------------------------------

    async def record(self, *, idempotency_key: str, account: str, tool: str, technique_id: str,
                     technique_slug: str | None, technique_name: str, inputs: Mapping[str, Any],
                     run_cost: float | None, status: JournalStatus = "submitting",
                     budget_session: str | None = None, hold: tuple[str, float] | None = None) -> None:
        """Write the row of a run about to be submitted (`budget_session`: the session whose budget it spends), and
        with `hold` (a reservation id and a share of it) the run's hold too, in the same transaction (see `hold`)."""
        now = time.time()
        steps = [Step(
            "INSERT INTO runs (idempotency_key, account, tool, technique_id, technique_slug, technique_name, status, "
            "inputs, run_cost, created_at, updated_at, budget_session) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (idempotency_key, account, redact(tool), redact(technique_id), redact_value(technique_slug),
             redact(technique_name), status, json.dumps(redact_value(dict(inputs))), run_cost, now, now,
             budget_session))]
        if hold is not None:
            steps += _hold_steps(hold[0], idempotency_key, hold[1], now)
        await self._transact(steps)

    async def update(self, idempotency_key: str, **fields: Any) -> None:
        """Set some of run_id, status, progress, outputs, charged_cost, poll_url, error_code, error_message."""
        await self._transact([_update(idempotency_key, fields)])

    async def get(self, account: str, run_id: str) -> JournalEntry | None:
        """The latest entry of one account's run, or None."""
        rows = await self._rows(f"SELECT {ENTRY_COLUMNS} FROM runs WHERE account = ? AND run_id = ? "
                                "ORDER BY created_at DESC LIMIT 1", account, run_id)
        return _entry(rows[0]) if rows else None

    async def get_by_key(self, idempotency_key: str) -> JournalEntry | None:
        """The entry recorded under an idempotency key, or None."""
        rows = await self._rows(f"SELECT {ENTRY_COLUMNS} FROM runs WHERE idempotency_key = ?", idempotency_key)
        return _entry(rows[0]) if rows else None

    async def recent(self, account: str, *, limit: int = 20, status: str | None = None) -> list[JournalEntry]:
        """One account's latest entries, newest first, optionally only those in one status."""
        query = f"SELECT {ENTRY_COLUMNS} FROM runs WHERE account = ?"
        params: list[Any] = [account]
        if status:
            query += " AND status = ?"
            params.append(status)
        query += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        params.append(limit)
        return [_entry(row) for row in await self._rows(query, *params)]

    async def lost_rows(self, key_account: str, technique_id: str | None = None) -> list[JournalEntry]:
        """Rows of one key's accounts (the key's own and its principals') whose create gave no run id yet, oldest
        first (core/recovery.py)."""
        query = (f"SELECT {ENTRY_COLUMNS} FROM runs WHERE (account = ? OR account LIKE ?) AND run_id IS NULL "
                 "AND status IN ('submitting', 'unknown') "
                 "AND (error_code IS NULL OR error_code != 'run_not_identified')")
        params: list[Any] = [key_account, f"{key_account}/%"]
        if technique_id is not None:
            query += " AND technique_id = ?"
            params.append(technique_id)
        return [_entry(row) for row in await self._rows(query + " ORDER BY created_at, rowid", *params)]

    async def claimed(self, run_ids: Sequence[str]) -> set[str]:
        """Which of these run ids some row holds, whatever its account."""
        if not run_ids:
            return set()
        marks = ", ".join("?" * len(run_ids))
        return {row[0] for row in await self._rows(f"SELECT run_id FROM runs WHERE run_id IN ({marks})", *run_ids)}

    async def adopt(self, *, account: str, key: str, tool: str, technique_id: str, technique_slug: str | None,
                    technique_name: str, run_id: str, status: str, poll_url: str | None,
                    run_cost: float | None) -> None:
        """Keep a run FLORA made that no call could be matched to, as an unclaimed row (once per run)."""
        now = time.time()
        await self._write(
            "INSERT INTO runs (idempotency_key, account, run_id, tool, technique_id, technique_slug, technique_name, "
            "status, inputs, run_cost, poll_url, error_message, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (idempotency_key) DO NOTHING",
            key, account, run_id, redact(tool), technique_id, technique_slug, redact(technique_name), status, "{}",
            run_cost, poll_url, "unclaimed: found on FLORA after a lost create answer, not matched to a call", now,
            now)

    async def spend(self, account: str) -> list[dict[str, Any]]:
        """Charged cost and run count per technique, largest spend first."""
        rows = await self._rows(
            "SELECT MAX(technique_name) AS name, MAX(technique_slug), technique_id, COUNT(*), "
            "COALESCE(SUM(charged_cost), 0) AS charged FROM runs WHERE account = ? AND run_id IS NOT NULL "
            "GROUP BY technique_id ORDER BY charged DESC, name", account)
        return [{"technique_name": name, "technique_slug": slug, "technique_id": tid, "runs": int(runs),
                 "charged": float(charged)} for name, slug, tid, runs, charged in rows]

    async def charged_since(self, account: str, since: float) -> float:
        """What one account's runs created at or after `since` (epoch seconds) were charged in all."""
        rows = await self._rows("SELECT COALESCE(SUM(charged_cost), 0) FROM runs WHERE account = ? AND created_at >= ?",
                                account, since)
        return float(rows[0][0])

    async def count(self, account: str | None = None) -> int:
        """How many entries the journal holds, for one account or for all."""
        if account is None:
            return int((await self._rows("SELECT COUNT(*) FROM runs"))[0][0])
        return int((await self._rows("SELECT COUNT(*) FROM runs WHERE account = ?", account))[0][0])

    # The budget: one atomic check-and-reserve, holds per run, charges settled once ---------------------------------

    async def admit(self, *, scope: str, account: str, amount: float, session_budget: float | None,
                    daily_budget: float | None, day_start: float, lease: float) -> tuple[str, Admission]:
        """Reserve `amount` if it fits what is left of the session's and the day's budget, in one transaction.

        `scope` names whose session this is (a process's own, or a principal's across replicas): its session goes on
        while calls keep coming and ends after SESSION_IDLE seconds without one. What is left counts the session's
        (and the account's, for the day) charges and every live hold and reservation, whichever process made it. The
        reservation lapses after `lease` seconds, so one left by a process that died frees itself.
        Returns the session id and the admission.
        """
        now = time.time()
        candidate = f"session-{uuid.uuid4().hex}"
        reservation = f"call-{uuid.uuid4().hex}"
        session = "(SELECT session FROM budget_sessions WHERE scope = ?)"
        session_charged = f"(SELECT COALESCE(SUM(charged_cost), 0) FROM runs WHERE budget_session = {session})"
        session_held = f"(SELECT COALESCE(SUM(amount), 0) FROM budget_holds WHERE session = {session} AND {_LIVE_HOLD})"
        daily_charged = "(SELECT COALESCE(SUM(charged_cost), 0) FROM runs WHERE account = ? AND created_at >= ?)"
        daily_held = f"(SELECT COALESCE(SUM(amount), 0) FROM budget_holds WHERE account = ? AND {_LIVE_HOLD})"
        conditions, params = ["1 = 1"], []
        # What is left is read back only for a budget that is set: each sum reads every run of the session (or of
        # the account today), which a call without a budget has no use for.
        sums, sum_params = ["0", "0", "0", "0"], []
        if session_budget is not None:
            conditions.append(f"? <= ? - {session_charged} - {session_held} + ?")
            params += [amount, session_budget, scope, scope, now, EPSILON]
            sums[0:2], sum_params = [session_charged, session_held], [scope, scope, now]
        if daily_budget is not None:
            conditions.append(f"? <= ? - {daily_charged} - {daily_held} + ?")
            params += [amount, daily_budget, account, day_start, account, now, EPSILON]
            sums[2:4], sum_params = [daily_charged, daily_held], [*sum_params, account, day_start, account, now]
        lock = self._lock_account(account)
        sweep = now - self._swept_at >= SWEEP_EVERY
        if sweep:
            self._swept_at = now
        steps = [
            *([lock] if lock else []),
            *([Step("DELETE FROM budget_holds WHERE expires_at IS NOT NULL AND expires_at < ?", (now,))] if sweep
              else []),
            Step("INSERT INTO budget_sessions (scope, session, last_used) VALUES (?, ?, ?) ON CONFLICT (scope) DO "
                 "UPDATE SET session = CASE WHEN budget_sessions.last_used < ? THEN excluded.session "
                 "ELSE budget_sessions.session END, last_used = excluded.last_used",
                 (scope, candidate, now, now - SESSION_IDLE)),
            Step(f"INSERT INTO budget_holds (hold_id, account, session, run_key, amount, created_at, expires_at) "
                 f"SELECT ?, ?, {session}, NULL, ?, ?, ? WHERE {' AND '.join(conditions)}",
                 (reservation, account, scope, amount, now, now + lease, *params)),
            Step(f"SELECT {session}, (SELECT COUNT(*) FROM budget_holds WHERE hold_id = ?), {', '.join(sums)}",
                 (scope, reservation, *sum_params), rows=True),
        ]
        [(session_id, granted, s_charged, s_held, d_charged, d_held)] = (await self._transact(steps))[-1]
        return str(session_id), Admission(
            reservation_id=reservation if granted else None,
            session_left=None if session_budget is None else max(session_budget - s_charged - s_held, 0.0),
            daily_left=None if daily_budget is None else max(daily_budget - d_charged - d_held, 0.0))

    async def hold(self, reservation_id: str, key: str, share: float) -> None:
        """A run's create is leaving: `share` of the call's reservation becomes the run's hold, kept until the run is
        charged or ends (by whichever process sees it next)."""
        await self._transact(_hold_steps(reservation_id, key, share, time.time()))

    async def release(self, key: str) -> None:
        """Nothing more is to be charged for this run: its hold ends."""
        await self._write("DELETE FROM budget_holds WHERE run_key = ?", key)

    async def close_reservation(self, reservation_id: str, *, totals_of: str | None = None
                                ) -> tuple[float, float] | None:
        """The call is over: what it reserved and never gave a run is free again. With `totals_of` (a scope), the
        `session_totals` of that scope as the reservation ends, read in the same transaction."""
        return await self.write_run(None, close=reservation_id, totals_of=totals_of)

    async def settle(self, key: str, cost: float) -> float | None:
        """FLORA says the run of `key` cost `cost`: written to its row and its hold ended, in one step; the cost the
        row had before (so a charge reported twice is counted once: spend is read from the rows)."""
        rows = await self._transact([
            Step("SELECT charged_cost FROM runs WHERE idempotency_key = ?", (key,), rows=True),
            _update(key, {"charged_cost": cost}),
            Step("DELETE FROM budget_holds WHERE run_key = ?", (key,)),
        ])
        return None if not rows[0] or rows[0][0][0] is None else float(rows[0][0][0])

    async def write_run(self, key: str | None, *, end_hold: bool = False, close: str | None = None,
                        totals_of: str | None = None, **fields: Any) -> tuple[float, float] | None:
        """What a run's event changes, in one transaction: the row's `fields` (as `update` writes them; a
        charged_cost among them is FLORA's charge), the run's hold ended (`end_hold`: charged, or ended), the call's
        reservation `close`d; and with `totals_of` (a scope), its `session_totals` read last. A call makes few round
        trips this way: each is a hop to the engine and back through a busy event loop."""
        steps = []
        if key is not None and fields:
            steps.append(_update(key, fields))
        if key is not None and end_hold:
            steps.append(Step("DELETE FROM budget_holds WHERE run_key = ?", (key,)))
        if close is not None:
            steps.append(Step("DELETE FROM budget_holds WHERE hold_id = ?", (close,)))
        if totals_of is not None:
            steps.append(_totals_step(totals_of))
        if not steps:
            return None
        rows = await self._transact(steps)
        return None if totals_of is None else _totals(rows[-1])

    async def session_totals(self, scope: str) -> tuple[float, float]:
        """What the current session of `scope` was charged, and what it holds now."""
        return _totals((await self._transact([_totals_step(scope)]))[0])

    # MCP tasks ---------------------------------------------------------------------------------------------------

    async def save_task(self, task: StoredTask) -> bool:
        """Write the task's state, unless its row already ended (the first final state stays, whichever process
        wrote it); whether it was written."""
        expires = time.time() + max(task.ttl_ms / 1000, 3600.0)
        message = redact(task.message)  # a task's words and result are redacted as they are written, as a run's
        values = (task.task_id, task.account, task.shape, redact(task.tool), task.status, message, task.created_at,
                  task.updated_at, task.ttl_ms, task.poll_ms, json.dumps(task.run_ids),
                  None if task.result is None else json.dumps(redact_value(task.result)), expires)
        terminal = ", ".join(f"'{status}'" for status in _TERMINAL_TASK)
        rows = await self._transact([
            Step(f"INSERT INTO mcp_tasks ({TASK_COLUMNS}, expires_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) "
                 "ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, message = excluded.message, "
                 "updated_at = excluded.updated_at, run_ids = excluded.run_ids, result = excluded.result, "
                 f"expires_at = excluded.expires_at WHERE mcp_tasks.status NOT IN ({terminal})", values),
            Step("SELECT status, updated_at, message FROM mcp_tasks WHERE task_id = ?", (task.task_id,), rows=True),
        ])
        return bool(rows[1]) and tuple(rows[1][0]) == (task.status, task.updated_at, message)

    async def load_task(self, account: str, task_id: str) -> StoredTask | None:
        """The task, if this account made it and it has not expired."""
        rows = await self._rows(f"SELECT {TASK_COLUMNS} FROM mcp_tasks WHERE task_id = ? AND account = ? "
                                "AND expires_at >= ?", task_id, account, time.time())
        if not rows:
            return None
        (task_id, account, shape, tool, status, message, created_at, updated_at, ttl_ms, poll_ms, run_ids,
         result) = rows[0]
        return StoredTask(task_id=task_id, account=account, shape=shape, tool=tool, status=status, message=message,
                          created_at=created_at, updated_at=updated_at, ttl_ms=int(ttl_ms), poll_ms=int(poll_ms),
                          run_ids=json.loads(run_ids), result=json.loads(result) if result else None)

    async def purge_tasks(self) -> None:
        """Forget tasks past their time to live."""
        await self._write("DELETE FROM mcp_tasks WHERE expires_at < ?", time.time())

    # Remembered uploads ------------------------------------------------------------------------------------------

    async def asset_get(self, account: str, workspace_id: str, sha256: str) -> RememberedAsset | None:
        rows = await self._rows("SELECT asset_id, url, size_bytes, content_type FROM uploaded_assets "
                                "WHERE account = ? AND workspace_id = ? AND sha256 = ?", account, workspace_id, sha256)
        return RememberedAsset(rows[0][0], rows[0][1], int(rows[0][2]), rows[0][3]) if rows else None

    async def asset_put(self, account: str, workspace_id: str, sha256: str, asset: RememberedAsset) -> None:
        await self._write(
            "INSERT INTO uploaded_assets (account, workspace_id, sha256, asset_id, url, size_bytes, content_type, "
            "created_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (account, workspace_id, sha256) DO UPDATE SET "
            "asset_id = excluded.asset_id, url = excluded.url, size_bytes = excluded.size_bytes, "
            "content_type = excluded.content_type, created_at = excluded.created_at",
            account, workspace_id, sha256, asset.asset_id, asset.url, asset.size_bytes, asset.content_type, time.time())

    async def asset_forget(self, account: str, workspace_id: str, sha256: str) -> None:
        await self._write("DELETE FROM uploaded_assets WHERE account = ? AND workspace_id = ? AND sha256 = ?",
                          account, workspace_id, sha256)


def _update(idempotency_key: str, fields: Mapping[str, Any]) -> Step:
    """The statement that sets some of a row's UPDATABLE fields (redacted, outputs as JSON) and its updated_at."""
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise ValueError(f"not journal fields: {sorted(unknown)}")
    values = redact_value(dict(fields))
    if "outputs" in values:
        values["outputs"] = json.dumps(values["outputs"])
    assignments = "".join(f"{name} = ?, " for name in values)
    return Step(f"UPDATE runs SET {assignments}updated_at = ? WHERE idempotency_key = ?",
                (*values.values(), time.time(), idempotency_key))


def _hold_steps(reservation_id: str, key: str, share: float, now: float) -> list[Step]:
    """`share` of a call's reservation moved into the hold of the run keyed `key`."""
    return [
        Step("INSERT INTO budget_holds (hold_id, account, session, run_key, amount, created_at, expires_at) "
             "SELECT ?, account, session, ?, ?, ?, NULL FROM budget_holds WHERE hold_id = ?",
             (f"run-{key}", key, share, now, reservation_id)),
        Step("UPDATE budget_holds SET amount = amount - ? WHERE hold_id = ?", (share, reservation_id)),
    ]


def _totals_step(scope: str) -> Step:
    """What the current session of `scope` was charged, and what it holds now: one row of two sums."""
    now = time.time()
    session = "(SELECT session FROM budget_sessions WHERE scope = ? AND last_used >= ?)"
    return Step(f"SELECT (SELECT COALESCE(SUM(charged_cost), 0) FROM runs WHERE budget_session = {session}), "
                f"(SELECT COALESCE(SUM(amount), 0) FROM budget_holds WHERE session = {session} AND {_LIVE_HOLD})",
                (scope, now - SESSION_IDLE, scope, now - SESSION_IDLE, now), rows=True)


def _totals(rows: list[tuple[Any, ...]]) -> tuple[float, float]:
    return float(rows[0][0]), float(rows[0][1])


def _entry(row: Sequence[Any]) -> JournalEntry:
    names = ENTRY_COLUMNS.split(", ")
    data = dict(zip(names, row, strict=True))
    data["inputs"] = json.loads(data["inputs"] or "{}")
    data["outputs"] = json.loads(data["outputs"] or "[]")
    return JournalEntry(**data)
