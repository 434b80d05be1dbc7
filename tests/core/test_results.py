"""OUTPUT_SCHEMA is derived from ToolResult, flat, and validates what results send; each status vocabulary once."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from jsonschema import Draft202012Validator

from flora_mcp.api.models import RUN_STATUSES, Run
from flora_mcp.core.results import ERROR_STATUSES, OUTPUT_SCHEMA, RESULT_STATUSES, ToolResult
from flora_mcp.core.translator import combined, from_failure, from_run, informational, refusal
from flora_mcp.store import JOURNAL_STATUSES

RUNNING = Run.model_validate({"run_id": "run_1", "status": "running", "progress": 0.4})
DONE = Run.model_validate({"run_id": "run_2", "status": "completed", "charged_cost": 0.05,
                           "outputs": [{"output_id": "o", "type": "imageUrl", "url": "https://x.test/o.png"}]})
RESULTS = [
    pytest.param(from_run("cctv-cam", DONE, None), id="completed"),
    pytest.param(from_run("cctv-cam", RUNNING, None), id="running"),
    pytest.param(refusal("cctv-cam", None, "bad"), id="invalid"),
    pytest.param(combined("cctv-cam", [from_run("cctv-cam", DONE, None), from_run("cctv-cam", RUNNING, None)]),
                 id="several-runs"),
    pytest.param(informational("flora_spend", {"session_spend": 0.0}, session_spend=0.0), id="informational"),
]


def walk(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        return [node, *(n for value in node.values() for n in walk(value))]
    if isinstance(node, list):
        return [n for item in node for n in walk(item)]
    return []


@pytest.mark.parametrize("result", RESULTS)
def test_every_kind_of_result_validates_against_the_output_schema(result: ToolResult) -> None:
    Draft202012Validator.check_schema(OUTPUT_SCHEMA)
    assert list(Draft202012Validator(OUTPUT_SCHEMA).iter_errors(result.structured())) == []


def test_the_schema_is_the_models_flat_and_without_nulls() -> None:
    properties = OUTPUT_SCHEMA["properties"]
    assert set(properties) == set(ToolResult.model_fields) - {"tool"}  # structured() leaves the tool out
    assert OUTPUT_SCHEMA["required"] == ["status", "outputs"]
    assert tuple(properties["status"]["enum"]) == RESULT_STATUSES
    text = json.dumps(OUTPUT_SCHEMA)
    assert "$ref" not in text and "anyOf" not in text and "null" not in text and '"title"' not in text
    described = {name for name, schema in properties.items() if "description" in schema}
    assert described == {"status", "run_id", "charged_cost"}  # what an agent needs, in every technique tool
    assert "flora_get_run" in properties["status"]["description"]
    assert all("description" not in node for node in walk(properties["technique"]))


def test_each_status_vocabulary_includes_floras_run_statuses() -> None:
    floras = set(get_args(Run.model_fields["status"].annotation))
    assert floras == set(RUN_STATUSES)
    assert floras <= set(RESULT_STATUSES) and floras <= set(JOURNAL_STATUSES)
    assert ERROR_STATUSES <= set(RESULT_STATUSES)
    failed = from_failure("cctv-cam", RuntimeError("x"), None)
    assert failed.is_error and failed.status in ERROR_STATUSES


def test_redacted_hides_a_secret_anywhere_in_a_result_and_keeps_a_clean_one_as_it_is(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from flora_mcp import logs

    monkeypatch.setattr(logs, "_secrets", type(logs._secrets)())
    logs.add_secret("tok-ABCDEF-123")
    leaky = combined("cctv-cam", [from_run("cctv-cam", DONE, None),
                                  refusal("cctv-cam", None, "the key tok-ABCDEF-123 was refused")])
    hidden = leaky.redacted()
    assert "tok-ABCDEF-123" not in hidden.model_dump_json() and logs.REDACTED in hidden.runs[1].error_message
    clean = from_run("cctv-cam", DONE, None)
    assert clean.redacted() is clean
    unwritable = informational("flora_spend", {"who": object(), "note": "tok-ABCDEF-123"}, session_spend=0.0)
    assert unwritable.redacted().data["note"] == logs.REDACTED  # JSON cannot write it: redacted field by field
