from __future__ import annotations

import pytest

from flora_mcp.api.models import Run, Technique


@pytest.mark.parametrize(("raw", "percent"), [(0, 0.0), (0.5, 50.0), (1, 100.0), (42, 42.0), (100, 100.0),
                                              (250, 100.0), (None, None)])
def test_progress_is_read_as_fraction_up_to_one_else_percent(raw: float | None, percent: float | None) -> None:
    assert Run.model_validate({"run_id": "r", "status": "running", "progress": raw}).progress == percent


def test_run_reads_camel_case_and_top_level_create_answers() -> None:
    run = Run.model_validate({"runId": "r1", "pollUrl": "https://x/p", "chargedCost": 0.1, "estimated_seconds": 3,
                              "technique": {"technique_id": "tech_1", "name": "T"}})
    assert (run.run_id, run.status, run.poll_url, run.charged_cost) == ("r1", "pending", "https://x/p", 0.1)
    assert run.technique_id == "tech_1" and run.estimated_seconds == 3


def test_summary_and_full_technique_items() -> None:
    summary = Technique.model_validate({"technique_id": "tech_1", "slug": "cctv-cam", "name": "CCTV Cam"})
    full = Technique.model_validate({"techniqueId": "tech_2", "name": "X", "runCost": 0.05,
                                     "inputs": [{"id": "a", "type": "text", "optional": None}], "outputs": None})
    assert summary.is_summary and not full.is_summary
    assert full.ref == "tech_2" and full.run_cost == 0.05 and full.inputs and full.inputs[0].name == "a"
    assert full.outputs == []
