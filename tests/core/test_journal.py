"""`JournalWriter`, event by event, against a real SQLite store: what each write puts in the row, and what a store
that fails or hangs after the create left does to the call (nothing: the write is dropped, logged once, and the
call goes on).

The lifecycle's own tests (test_runs_journal_writes.py, test_journal_faults.py) see these through a whole call; here
each rule is pinned where a mutant of it would otherwise pass: the row's every field, the hold and the session the
row is written with, the warning's wording and its once-only rule, the patience while the store keeps failing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from flora_mcp.api.errors import APIConnectionError, AuthenticationError
from flora_mcp.api.models import Run, Technique
from flora_mcp.core import journal as journal_module
from flora_mcp.core.journal import KEPT_WAIT, KEPT_WAIT_FAILING, JournalWriter, created_fields, finished_fields
from flora_mcp.store import JournalError, Store, open_store

pytestmark = pytest.mark.anyio

ACCOUNT = "acct-journal"
TECHNIQUE = Technique(technique_id="tech_42", slug="cctv-cam", name="CCTV Cam", run_cost=0.25, inputs=[])
INPUTS = {"input_image": "https://example.com/cat.png", "strength": 3}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(str(tmp_path / "journal.sqlite3"))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.aclose()


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="flora_mcp.core.journal")
    return caplog


def journal_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "flora_mcp.core.journal"]


async def failing_write() -> Any:
    raise OSError(28, "No space left on device")


def rounded(totals: tuple[float, float]) -> tuple[float, float]:
    return round(totals[0], 9), round(totals[1], 9)


async def answering_write(value: Any) -> Any:
    await anyio.lowlevel.checkpoint()
    return value


async def test_submitting_writes_the_whole_row_before_anything_is_sent(store: Store) -> None:
    writer = JournalWriter(store, ACCOUNT)
    await writer.submitting("key-1", "cctv_cam", TECHNIQUE, INPUTS)
    entry = await store.get_by_key("key-1")
    assert entry is not None
    assert (entry.account, entry.tool, entry.technique_id, entry.technique_slug, entry.technique_name) == (
        ACCOUNT, "cctv_cam", "tech_42", "cctv-cam", "CCTV Cam")
    assert entry.inputs == INPUTS and entry.run_cost == 0.25
    assert (entry.status, entry.run_id, entry.outputs, entry.charged_cost) == ("submitting", None, [], None)


async def test_submitting_writes_the_runs_hold_and_its_session_in_the_same_step(store: Store) -> None:
    session, admission = await store.admit(scope="scope-1", account=ACCOUNT, amount=1.0, session_budget=5.0,
                                           daily_budget=None, day_start=0.0, lease=600.0)
    assert admission.reservation_id is not None
    writer = JournalWriter(store, ACCOUNT)
    await writer.submitting("key-2", "cctv_cam", TECHNIQUE, INPUTS, budget_session=session,
                            hold=(admission.reservation_id, 0.4))
    assert rounded(await store.session_totals("scope-1")) == (0.0, 1.0)
    await store.release("key-2")  # the run's own hold: it exists only if submitting moved 0.4 into it
    assert rounded(await store.session_totals("scope-1")) == (0.0, 0.6)
    await store.update("key-2", run_id="run_2", charged_cost=0.3)  # counts for the session the row was written with
    assert rounded(await store.session_totals("scope-1")) == (0.3, 0.6)


async def test_before_send_turns_a_store_failure_into_a_journal_error_saying_nothing_was_sent(
        store: Store, warnings: pytest.LogCaptureFixture) -> None:
    writer = JournalWriter(store, ACCOUNT)
    with pytest.raises(JournalError) as raised:
        with writer.before_send():
            raise OSError(28, "No space left on device")
    message = raised.value.message
    assert str(store.location) in message and "OSError" in message and "No space left on device" in message
    assert "nothing was sent to FLORA" in message and "FLORA_JOURNAL" in message
    assert isinstance(raised.value.__cause__, OSError)
    assert journal_lines(warnings) == [(logging.WARNING, message)]


async def test_before_send_lets_a_journal_error_through_as_it_is(store: Store) -> None:
    writer = JournalWriter(store, ACCOUNT)
    original = JournalError("the budget store refused")
    with pytest.raises(JournalError) as raised:
        with writer.before_send():
            raise original
    assert raised.value is original


async def test_kept_returns_what_the_write_returns(store: Store) -> None:
    writer = JournalWriter(store, ACCOUNT)
    assert await writer.kept("outputs", "key-3", answering_write(0.75), run_id="run_3") == 0.75
    assert writer.patience == KEPT_WAIT


async def test_a_failed_kept_write_is_swallowed_and_warned_of_once_while_the_store_keeps_failing(
        store: Store, warnings: pytest.LogCaptureFixture) -> None:
    writer = JournalWriter(store, ACCOUNT)
    assert writer.patience == KEPT_WAIT
    assert await writer.kept("run id", "key-4", failing_write(), run_id="run_4") is None
    assert writer.patience == KEPT_WAIT_FAILING  # the store is most likely still down: do not wait 10 s on it again
    assert await writer.kept("status", "key-5", failing_write()) is None
    lines = journal_lines(warnings)
    assert [level for level, _ in lines] == [logging.WARNING, logging.DEBUG]
    first, second = (text for _, text in lines)
    assert first == (f"cannot write the run journal {store.location} (OSError: [Errno 28] No space left on device) "
                     "for the run id of run run_4: the call goes on and its answer carries the run; flora_list_runs "
                     "may show it without the change until the store is fixed")
    assert "for the status of the call keyed key-5:" in second
    # A write that works ends the failing spell: the next failure is a warning again, and patience is back.
    assert await writer.kept("outputs", "key-6", answering_write("ok")) == "ok"
    assert writer.patience == KEPT_WAIT
    assert await writer.kept("outputs", "key-7", failing_write()) is None
    assert [level for level, _ in journal_lines(warnings)][-1] == logging.WARNING


async def test_a_kept_write_that_hangs_is_abandoned_after_the_patience_and_the_call_goes_on(
        store: Store, monkeypatch: pytest.MonkeyPatch, warnings: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(journal_module, "KEPT_WAIT", 0.05)
    monkeypatch.setattr(journal_module, "KEPT_WAIT_FAILING", 0.01)
    writer = JournalWriter(store, ACCOUNT)
    hung = anyio.Event()
    assert await writer.kept("outputs", "key-8", hung.wait(), run_id="run_8") is None
    assert not hung.is_set()
    assert writer.patience == 0.01
    [(level, text)] = journal_lines(warnings)
    assert level == logging.WARNING and "(TimeoutError: )" in text and "run run_8" in text


async def test_a_new_writer_starts_with_a_store_taken_as_working(store: Store) -> None:
    assert JournalWriter(store, ACCOUNT).patience == KEPT_WAIT


@pytest.mark.parametrize(("run_may_exist", "status"), [(True, "unknown"), (False, "error")])
async def test_create_failed_marks_the_row_unknown_only_when_a_run_may_exist(
        store: Store, run_may_exist: bool, status: str) -> None:
    writer = JournalWriter(store, ACCOUNT)
    await writer.submitting("key-9", "cctv_cam", TECHNIQUE, INPUTS)
    failure = (APIConnectionError("the connection dropped after the request was sent", endpoint="/runs")
               if run_may_exist else
               AuthenticationError("bad key", status_code=401, code="unauthorized", endpoint="/runs"))
    await writer.create_failed("key-9", failure, run_may_exist=run_may_exist)
    entry = await store.get_by_key("key-9")
    assert entry is not None
    assert (entry.status, entry.error_code, entry.error_message) == (status, failure.code, failure.message)


async def test_polled_writes_the_new_status_and_progress(store: Store) -> None:
    writer = JournalWriter(store, ACCOUNT)
    await writer.submitting("key-10", "cctv_cam", TECHNIQUE, INPUTS)
    await store.update("key-10", **created_fields(Run(run_id="run_10", status="pending")))
    await writer.polled("key-10", Run(run_id="run_10", status="running", progress=40))
    entry = await store.get(ACCOUNT, "run_10")
    assert entry is not None and (entry.status, entry.progress) == ("running", 40.0)


def test_created_and_finished_fields_carry_what_the_row_needs() -> None:
    run = Run.model_validate({"id": "run_11", "status": "completed", "progress": 100, "pollUrl": "https://p/run_11",
                              "outputs": [{"id": "o1", "type": "imageUrl", "url": "https://cdn/o1.png"}],
                              "errorCode": None, "errorMessage": None})
    assert created_fields(run) == {"run_id": "run_11", "status": "completed", "poll_url": "https://p/run_11",
                                   "progress": 100.0}
    assert finished_fields(run) == {
        "status": "completed", "progress": 100.0, "error_code": None, "error_message": None,
        "outputs": [{"output_id": "o1", "type": "imageUrl", "url": "https://cdn/o1.png"}]}
    failed = Run.model_validate({"id": "run_12", "status": "failed", "errorCode": "nsfw", "errorMessage": "refused"})
    assert (finished_fields(failed)["error_code"], finished_fields(failed)["error_message"]) == ("nsfw", "refused")


async def test_failed_writes_of_a_failure_and_of_a_poll_name_their_event_and_their_call_or_run(
        store: Store, monkeypatch: pytest.MonkeyPatch, warnings: pytest.LogCaptureFixture) -> None:
    writer = JournalWriter(store, ACCOUNT)

    async def update(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "update", update)
    failure = APIConnectionError("the connection dropped after the request was sent", endpoint="/runs")
    await writer.create_failed("key-13", failure, run_may_exist=True)
    await writer.polled("key-14", Run(run_id="run_14", status="running", progress=10))
    [(_, failed), (_, polled)] = journal_lines(warnings)
    assert "(OSError: [Errno 28] No space left on device) for the failure of the call keyed key-13:" in failed
    assert "(OSError: [Errno 28] No space left on device) for the status of run run_14:" in polled
