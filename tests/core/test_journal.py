from __future__ import annotations

from pathlib import Path

from flora_mcp.core.journal import Journal


def record(j: Journal, key: str, account: str = "acct") -> None:
    j.record(idempotency_key=key, account=account, tool="cctv-cam", technique_id="tech_1", technique_slug="cctv-cam",
             technique_name="CCTV Cam", inputs={"input_image": "https://x"}, run_cost=0.05)


def test_run_survives_reopening_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "j" / "runs.sqlite3")
    j = Journal(path)
    record(j, "k1")
    j.update("k1", run_id="run_1", status="running")
    j.close()
    again = Journal(path)
    entry = again.get("acct", "run_1")
    assert entry is not None and entry.status == "running" and entry.inputs == {"input_image": "https://x"}
    again.update("k1", status="completed", outputs=[{"output_id": "o", "type": "imageUrl", "url": "u"}],
                 charged_cost=0.05)
    assert again.get("acct", "run_1").outputs[0]["url"] == "u"  # type: ignore[union-attr]
    again.close()


def test_accounts_never_see_each_others_rows() -> None:
    j = Journal(":memory:")
    record(j, "k1", "alice")
    j.update("k1", run_id="run_a", charged_cost=0.05)
    record(j, "k2", "bob")
    j.update("k2", run_id="run_b", charged_cost=0.05)
    assert j.get("bob", "run_a") is None
    assert [e.run_id for e in j.recent("alice")] == ["run_a"]
    assert j.spend("bob")[0]["charged"] == 0.05 and j.count("bob") == 1


def test_spend_groups_per_technique_and_skips_unsubmitted() -> None:
    j = Journal(":memory:")
    for n in range(3):
        record(j, f"k{n}")
        j.update(f"k{n}", run_id=f"r{n}", charged_cost=0.05)
    record(j, "never-sent")
    rows = j.spend("acct")
    assert rows == [{"technique_name": "CCTV Cam", "technique_slug": "cctv-cam", "technique_id": "tech_1",
                     "runs": 3, "charged": 0.15000000000000002}] or abs(rows[0]["charged"] - 0.15) < 1e-9
