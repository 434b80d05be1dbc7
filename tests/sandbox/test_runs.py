"""Runs on the nested and top-level routes: shapes, lifecycle, progress, scoping, listing and input validation."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from sandbox_support import Api, client_for

from flora_mcp.sandbox import Account, Sandbox, SandboxConfig, serve_sandbox

pytestmark = pytest.mark.anyio

RUN_KEYS = {"run_id", "status", "progress", "created_at", "charged_cost", "poll_url"}


async def test_nested_create_answers_a_pending_run_with_an_absolute_poll_url(shared_api: Api) -> None:
    response = await shared_api.create("qr-code-generator", {"content": "hello"})
    assert response.status_code == 200
    assert response.headers["request-id"].startswith("req_")
    run = response.json()
    assert RUN_KEYS <= set(run)
    assert run["run_id"].startswith("run_")
    assert run["status"] == "pending"
    assert run["progress"] == 0
    assert run["charged_cost"] == 0.01
    assert run["estimated_seconds"] >= 0
    assert isinstance(run["created_at"], int)
    box = shared_api.box
    assert run["poll_url"] == f"{box.base_url}/techniques/qr-code-generator/runs/{run['run_id']}"


async def test_a_run_completes_with_timestamps_cost_and_outputs_under_files(shared_api: Api) -> None:
    run = await shared_api.run("qr-code-generator", {"content": "hello"})
    assert run["status"] == "completed"
    assert run["progress"] == 100
    assert run["created_at"] <= run["started_at"] <= run["completed_at"]
    assert run["charged_cost"] == 0.01
    assert "error_code" not in run
    [output] = run["outputs"]
    assert output["output_id"] == "qr_code"
    assert output["type"] == "imageUrl"
    assert output["url"].startswith(f"{shared_api.box.origin}/files/runs/{run['run_id']}/")


async def test_poll_by_technique_id_and_top_level_route_see_the_same_run(shared_api: Api) -> None:
    run = await shared_api.run("split-text", {"text": "a\nb"})
    technique_id = (await shared_api.technique("split-text"))["technique_id"]
    by_id = (await shared_api.client.get(f"/techniques/{technique_id}/runs/{run['run_id']}")).json()
    top = (await shared_api.client.get(f"/runs/{run['run_id']}")).json()
    assert by_id == top == run


async def test_top_level_create_answers_the_run_handle_without_status(shared_api: Api) -> None:
    technique = await shared_api.technique("find-and-replace-text")
    body = {
        "technique_id": technique["technique_id"],
        "workspace_id": "ws_sandbox",
        "inputs": {"text": "red fish", "find": "red", "replace": "blue"},
    }
    response = await shared_api.client.post("/runs/technique", json=body)
    assert response.status_code == 200, response.text
    handle = response.json()
    assert set(handle) == {"run_id", "type", "charged_cost", "estimated_seconds", "poll_url", "technique"}
    assert handle["type"] == "technique"
    assert handle["technique"] == {"name": "Find and Replace Text", "technique_id": technique["technique_id"]}
    assert handle["poll_url"] == f"{shared_api.box.base_url}/runs/{handle['run_id']}"
    run = await shared_api.wait(handle["poll_url"])
    assert run["poll_url"] == handle["poll_url"]
    assert await shared_api.text(run["outputs"][0]["url"]) == "blue fish"


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        pytest.param(
            {"workspace_id": "ws_sandbox", "inputs": {"prompt": "x"}},
            422,
            "input_validation_error",
            "technique_id",
            id="missing-technique",
        ),
        pytest.param(
            {"technique_id": "flaky-provider", "workspace_id": "ws_sandbox", "inputs": {"prompt": "x"}},
            422,
            "input_validation_error",
            "technique_id",
            id="slug-instead-of-id",
        ),
        pytest.param(
            {"technique_id": "tech_x", "inputs": {"prompt": "x"}},
            422,
            "input_validation_error",
            "workspace_id",
            id="missing-workspace",
        ),
        pytest.param(
            {"technique_id": "tech_000000000000", "workspace_id": "ws_sandbox", "inputs": {"prompt": "x"}},
            404,
            "not_found",
            None,
            id="unknown-technique",
        ),
        pytest.param(
            {"technique_id": "FLAKY", "workspace_id": "ws_other", "inputs": {"prompt": "x"}},
            403,
            "forbidden",
            None,
            id="other-workspace",
        ),
        pytest.param(
            {"technique_id": "FLAKY", "workspace_id": "ws_sandbox", "inputs": []},
            422,
            "input_validation_error",
            "inputs",
            id="inputs-not-a-map",
        ),
        pytest.param(
            {"technique_id": "FLAKY", "workspace_id": "ws_sandbox", "inputs": {"prompt": 3}},
            422,
            "input_validation_error",
            "prompt",
            id="value-not-a-string",
        ),
    ],
)
async def test_top_level_create_errors(
    shared_api: Api, body: dict[str, Any], status: int, code: str, field: str | None
) -> None:
    body = dict(body)
    if body.get("technique_id") == "FLAKY":
        body["technique_id"] = (await shared_api.technique("flaky-provider"))["technique_id"]
    before = len(shared_api.box.runs)
    response = await shared_api.client.post("/runs/technique", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    if field is not None:
        assert field in [f["field"] for f in error["fields"]]
    assert len(shared_api.box.runs) == before


@pytest.mark.parametrize(
    ("inputs", "fields"),
    [
        pytest.param([], {"inputs": "non-empty"}, id="empty"),
        pytest.param(None, {"inputs": "non-empty"}, id="missing"),
        pytest.param([{"id": "text", "type": "text", "value": "x"}], {"find": "Required"}, id="missing-required"),
        pytest.param(
            [
                {"id": "text", "type": "text", "value": "x"},
                {"id": "find", "type": "text", "value": "x"},
                {"id": "colour", "type": "text", "value": "x"},
            ],
            {"colour": "Unknown input"},
            id="unknown-id",
        ),
        pytest.param(
            [{"id": "text", "type": "imageUrl", "value": "x"}, {"id": "find", "type": "text", "value": ""}],
            {"text": "Expected type text", "find": "Required"},
            id="wrong-type-and-empty",
        ),
        pytest.param([{"id": "text", "type": "text", "value": 5}], {"text": "string"}, id="value-not-string"),
        pytest.param(["text"], {"inputs[0]": "object"}, id="item-not-object"),
    ],
)
async def test_nested_create_lists_every_invalid_field(shared_api: Api, inputs: Any, fields: dict[str, str]) -> None:
    body = {"mode": "async", **({"inputs": inputs} if inputs is not None else {})}
    response = await shared_api.client.post("/techniques/find-and-replace-text/runs", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "input_validation_error"
    got = {f["field"]: f["message"] for f in error["fields"]}
    assert set(got) >= set(fields)
    for name, fragment in fields.items():
        assert fragment in got[name]
        assert name in error["message"]


@pytest.mark.parametrize(
    ("technique", "inputs", "field"),
    [
        pytest.param("cctv-cam", {"input_image": "https://example.com/photo.png"}, "input_image", id="remote-host"),
        pytest.param("cctv-cam", {"input_image": "file:///etc/passwd"}, "input_image", id="file-scheme"),
        pytest.param("cctv-cam", {"input_image": "not a url"}, "input_image", id="not-a-url"),
        pytest.param("cctv-cam", {"input_image": "http://10.0.0.1/x.png"}, "input_image", id="private-ip"),
        pytest.param(
            "change-image-ar", {"input_image": "data:,x", "aspect_ratio": "wide"}, "aspect_ratio", id="technique-check"
        ),
        pytest.param("color-grade-image", {"input_image": "data:,x", "grade": "purple"}, "grade", id="bad-grade"),
        pytest.param("tone-generator", {"frequency": "5"}, "frequency", id="out-of-range"),
    ],
)
async def test_values_are_checked_at_create_time(
    shared_api: Api, technique: str, inputs: dict[str, str], field: str
) -> None:
    before = len(shared_api.box.runs)
    response = await shared_api.create(technique, inputs)
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["error"]["fields"]] == [field]
    assert len(shared_api.box.runs) == before


async def test_snake_case_input_types_are_accepted(shared_api: Api) -> None:
    body = {
        "inputs": [{"id": "input_image", "type": "image_url", "value": shared_api.box.sample_url("logo.png")}],
        "mode": "async",
    }
    response = await shared_api.client.post("/techniques/cctv-cam/runs", json=body)
    assert response.status_code == 200, response.text


async def test_stream_mode_is_refused(shared_api: Api) -> None:
    response = await shared_api.create("split-text", {"text": "a"}, mode="stream")
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "mode"


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe"])
async def test_malformed_json_is_invalid_json(shared_api: Api, raw: bytes) -> None:
    response = await shared_api.client.post(
        "/techniques/split-text/runs", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


async def test_a_json_body_that_is_not_an_object_is_a_validation_error(shared_api: Api) -> None:
    response = await shared_api.client.post("/techniques/split-text/runs", json=["inputs"])
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == [{"field": "body", "message": "Must be a JSON object"}]


async def test_progress_rises_through_the_delay(box: Sandbox, api: Api) -> None:
    box.state.run_delay = 0.6
    response = await api.create("split-text", {"text": "a,b", "separator": ","})
    seen: list[int] = [response.json()["progress"]]
    statuses = {response.json()["status"]}
    with anyio.fail_after(10):
        while True:
            run = (await api.client.get(response.json()["poll_url"])).json()
            seen.append(run["progress"])
            statuses.add(run["status"])
            if run["status"] == "completed":
                break
            await anyio.sleep(0.02)
    assert statuses == {"pending", "running", "completed"}
    assert seen == sorted(seen)
    assert len({p for p in seen if 0 < p < 100}) >= 4


async def test_a_per_technique_delay_overrides_the_global_one(box: Sandbox, api: Api) -> None:
    box.state.technique_delays["split-text"] = 30.0
    slow = (await api.create("split-text", {"text": "a"})).json()
    fast = await api.run("find-and-replace-text", {"text": "a", "find": "a"})
    assert fast["status"] == "completed"
    assert (await api.client.get(slow["poll_url"])).json()["status"] == "running"
    assert slow["estimated_seconds"] >= 30


async def test_failing_provider_fails_the_run_and_refunds_it() -> None:
    async with serve_sandbox(SandboxConfig(keys={"sk_a": Account(credits=1.0)})) as box, client_for(box) as client:
        api = Api(box, client)
        created = await api.create("flaky-provider", {"prompt": "please fail now"})
        assert created.json()["charged_cost"] == 0.05
        run = await api.wait(created.json()["poll_url"])
        assert run["status"] == "failed"
        assert run["error_code"] == "provider_error"
        assert run["error_message"]
        assert run["charged_cost"] == 0
        assert "outputs" not in run
        assert box.credits() == 1.0
        ok = await api.run("flaky-provider", {"prompt": "a lighthouse"})
        assert ok["status"] == "completed"
        image = await api.image(ok["outputs"][0]["url"])
        assert image.size == (512, 512)
        assert box.credits() == pytest.approx(0.95)


async def test_runs_are_private_to_their_key() -> None:
    config = SandboxConfig(keys={"sk_a": Account(), "sk_b": Account(workspace_id="ws_b")})
    async with serve_sandbox(config) as box, client_for(box, "sk_a") as a, client_for(box, "sk_b") as b:
        run = await Api(box, a).run("split-text", {"text": "x"})
        assert (await b.get(f"/runs/{run['run_id']}")).status_code == 404
        other = await b.get(f"/techniques/split-text/runs/{run['run_id']}")
        assert other.status_code == 404
        assert other.json()["error"]["code"] == "not_found"
        assert (await b.get("/technique-runs")).json()["technique_runs"] == []


async def test_a_run_polled_under_another_technique_is_not_found(shared_api: Api) -> None:
    run = await shared_api.run("split-text", {"text": "x"})
    assert (await shared_api.client.get(f"/techniques/cctv-cam/runs/{run['run_id']}")).status_code == 404
    assert (await shared_api.client.get("/runs/run_nope")).status_code == 404


async def test_workspaces_lists_the_keys_workspace(shared_api: Api) -> None:
    body = (await shared_api.client.get("/workspaces")).json()
    [workspace] = body["workspaces"]
    assert workspace["workspace_id"] == "ws_sandbox"
    assert workspace["role"] == "owner"
    assert isinstance(workspace["name"], str) and isinstance(workspace["created_at"], int)


async def test_technique_runs_lists_newest_first_with_filters_and_pages(box: Sandbox, api: Api) -> None:
    created = [await api.run("split-text", {"text": str(i)}) for i in range(4)]
    failed = await api.run("flaky-provider", {"prompt": "fail"})
    listing = (await api.client.get("/technique-runs")).json()
    ids = [run["run_id"] for run in listing["technique_runs"]]
    assert ids == [failed["run_id"], *[run["run_id"] for run in reversed(created)]]
    assert listing["technique_runs"][0]["technique_id"] == (await api.technique("flaky-provider"))["technique_id"]
    assert listing["meta"]["next_cursor"] is None

    only_failed = (await api.client.get("/technique-runs", params={"status": "failed"})).json()
    assert [run["run_id"] for run in only_failed["technique_runs"]] == [failed["run_id"]]
    split_id = (await api.technique("split-text"))["technique_id"]
    only_split = (await api.client.get("/technique-runs", params={"technique_id": split_id})).json()
    assert len(only_split["technique_runs"]) == 4

    walked: list[str] = []
    params = {"limit": "2"}
    while True:
        page = (await api.client.get("/technique-runs", params=params)).json()
        walked.extend(run["run_id"] for run in page["technique_runs"])
        if page["meta"]["next_cursor"] is None:
            break
        params = {"limit": "2", "cursor": page["meta"]["next_cursor"]}
    assert walked == ids

    mine = await api.client.get("/technique-runs", params={"workspace_id": "ws_sandbox"})
    assert len(mine.json()["technique_runs"]) == 5
    theirs = await api.client.get("/technique-runs", params={"workspace_id": "ws_else"})
    assert theirs.status_code == 403


@pytest.mark.parametrize(("scale", "expected"), [(1.0, 3.0), (0.0, 0.0), (0.5, 1.5)])
async def test_estimated_seconds_is_work_plus_delay_times_the_scale(scale: float, expected: float) -> None:
    async with serve_sandbox(SandboxConfig(estimate_scale=scale)) as box, client_for(box) as client:
        api = Api(box, client)
        nested = await api.create("flaky-provider", {"prompt": "ok"})
        assert nested.json()["estimated_seconds"] == expected
        technique_id = (await api.technique("flaky-provider"))["technique_id"]
        body = {"technique_id": technique_id, "workspace_id": "ws_sandbox", "inputs": {"prompt": "ok"}}
        assert (await client.post("/runs/technique", json=body)).json()["estimated_seconds"] == expected
