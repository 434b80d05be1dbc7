"""The journal in the store, on both engines: rows survive reopening, accounts never see each other's, spend adds up."""

from __future__ import annotations

import pytest

from flora_mcp.store import Store, open_store

pytestmark = pytest.mark.anyio


async def record(j: Store, key: str, account: str = "acct") -> None:
    await j.record(idempotency_key=key, account=account, tool="cctv-cam", technique_id="tech_1",
                   technique_slug="cctv-cam", technique_name="CCTV Cam", inputs={"input_image": "https://x"},
                   run_cost=0.05)


async def test_run_survives_reopening_the_store(store_location: str) -> None:
    j = open_store(store_location)
    await record(j, "k1")
    await j.update("k1", run_id="run_1", status="running")
    await j.aclose()
    again = open_store(store_location)
    entry = await again.get("acct", "run_1")
    assert entry is not None and entry.status == "running" and entry.inputs == {"input_image": "https://x"}
    await again.update("k1", status="completed", outputs=[{"output_id": "o", "type": "imageUrl", "url": "u"}],
                       charged_cost=0.05)
    done = await again.get("acct", "run_1")
    assert done is not None and done.outputs[0]["url"] == "u" and done.charged_cost == 0.05
    await again.aclose()


async def test_accounts_never_see_each_others_rows(store_location: str) -> None:
    j = open_store(store_location)
    await record(j, "k1", "alice")
    await j.update("k1", run_id="run_a", charged_cost=0.05)
    await record(j, "k2", "bob")
    await j.update("k2", run_id="run_b", charged_cost=0.05)
    assert await j.get("bob", "run_a") is None
    assert [e.run_id for e in await j.recent("alice")] == ["run_a"]
    assert (await j.spend("bob"))[0]["charged"] == 0.05 and await j.count("bob") == 1 and await j.count() == 2
    await j.aclose()


async def test_spend_groups_per_technique_and_skips_unsubmitted(store_location: str) -> None:
    j = open_store(store_location)
    for n in range(3):
        await record(j, f"k{n}")
        await j.update(f"k{n}", run_id=f"r{n}", charged_cost=0.05)
    await record(j, "never-sent")
    [row] = await j.spend("acct")
    assert {k: v for k, v in row.items() if k != "charged"} == {
        "technique_name": "CCTV Cam", "technique_slug": "cctv-cam", "technique_id": "tech_1", "runs": 3}
    assert row["charged"] == pytest.approx(0.15)
    assert await j.charged_since("acct", 0.0) == pytest.approx(0.15)
    await j.aclose()


async def test_recent_is_newest_first_and_filters_by_status(store_location: str) -> None:
    j = open_store(store_location)
    for n in range(5):
        await record(j, f"k{n}")
        await j.update(f"k{n}", run_id=f"r{n}", status="completed" if n % 2 else "failed")
    assert [e.run_id for e in await j.recent("acct", limit=3)] == ["r4", "r3", "r2"]
    assert [e.run_id for e in await j.recent("acct", status="completed")] == ["r3", "r1"]
    with pytest.raises(ValueError, match="not journal fields"):
        await j.update("k1", account="mallory")
    await j.aclose()


async def test_an_operation_that_fails_alone_or_among_others_fails_only_itself(store_location: str) -> None:
    # A duplicate key is refused whether its operation has the transaction to itself or shares a burst's commit
    # (SQLite: one transaction for all that queued up, each operation in a savepoint of its own); nothing of it is
    # kept, everything else is, and the store goes on serving.
    import anyio

    j = open_store(store_location)
    await record(j, "k0")
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        await j.record(idempotency_key="k0", account="acct", tool="t", technique_id="tech_1", technique_slug=None,
                       technique_name="again", inputs={}, run_cost=None, hold=("no-such-reservation", 0.01))
    failures: list[str] = []

    async def one(key: str) -> None:
        try:
            await record(j, key)
        except Exception:
            failures.append(key)

    async with anyio.create_task_group() as tg:
        for key in ["k1", "k2", "k0", "k3", "k4"]:
            tg.start_soon(one, key)
    assert failures == ["k0"]
    assert await j.count("acct") == 5
    entry = await j.get_by_key("k0")
    assert entry is not None and entry.technique_name == "CCTV Cam"


async def test_lost_rows_are_the_keys_and_its_principals_rows_without_a_run_id_oldest_first(
    store_location: str,
) -> None:
    j = open_store(store_location)
    await record(j, "mine", "acct")
    await record(j, "alices", "acct/alice")
    await record(j, "other-key", "acctx")  # another key's account, whose name only starts the same
    await j.record(idempotency_key="another-technique", account="acct", tool="qr", technique_id="tech_2",
                   technique_slug="qr", technique_name="QR", inputs={}, run_cost=None, status="unknown")
    await record(j, "answered", "acct")
    await j.update("answered", run_id="run_1", status="running")
    await record(j, "refused", "acct")
    await j.update("refused", status="failed", error_code="invalid_arguments")
    await record(j, "gave-up", "acct")
    await j.update("gave-up", status="unknown", error_code="run_not_identified")
    everything = [e.idempotency_key for e in await j.lost_rows("acct")]
    assert everything == ["mine", "alices", "another-technique"]
    assert [e.idempotency_key for e in await j.lost_rows("acct", "tech_1")] == ["mine", "alices"]
    assert [e.idempotency_key for e in await j.lost_rows("acct", "tech_2")] == ["another-technique"]
    await j.aclose()


async def test_claimed_run_ids_are_found_whatever_the_account_and_adopted_runs_are_kept_once(
    store_location: str,
) -> None:
    j = open_store(store_location)
    await record(j, "k1", "bob")
    await j.update("k1", run_id="run_b")
    assert await j.claimed([]) == set()
    assert await j.claimed(["run_b", "run_x"]) == {"run_b"}
    for _ in range(2):
        await j.adopt(account="acct", key="adopted-run_x", tool="cctv-cam", technique_id="tech_1",
                      technique_slug="cctv-cam", technique_name="CCTV Cam", run_id="run_x", status="completed",
                      poll_url="https://x/p", run_cost=0.05)
    assert await j.count("acct") == 1 and await j.claimed(["run_b", "run_x"]) == {"run_b", "run_x"}
    entry = await j.get("acct", "run_x")
    assert entry is not None and entry.idempotency_key == "adopted-run_x" and entry.status == "completed"
    assert (entry.tool, entry.technique_id, entry.technique_slug, entry.technique_name) == (
        "cctv-cam", "tech_1", "cctv-cam", "CCTV Cam")
    assert entry.poll_url == "https://x/p" and entry.run_cost == 0.05 and entry.inputs == {}
    assert entry.error_message == "unclaimed: found on FLORA after a lost create answer, not matched to a call"
    await j.aclose()


async def test_an_unknown_key_has_no_entry_and_recent_gives_twenty_by_default(store_location: str) -> None:
    j = open_store(store_location)
    assert await j.get_by_key("never-recorded") is None
    for n in range(21):
        await record(j, f"k{n}")
    latest = await j.recent("acct")
    assert len(latest) == 20 and latest[-1].idempotency_key == "k1"
    await j.aclose()
