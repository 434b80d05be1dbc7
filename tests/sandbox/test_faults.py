"""Fault injection and the request log: what httpx sees for each fault, and whether the side effect happened."""

from __future__ import annotations

import json
import logging
import time

import anyio
import httpx
import pytest
from sandbox_support import Api, loopback_client

from flora_mcp.sandbox import ROUTE_NAMES, Account, Faults, Sandbox, SandboxConfig, serve_sandbox
from tests.media_support import png_bytes

pytestmark = pytest.mark.anyio

SPLIT = {"inputs": [{"id": "text", "type": "text", "value": "a"}], "mode": "async"}
CREATE = "/techniques/split-text/runs"


async def test_status_before_answers_the_error_and_creates_nothing(box: Sandbox, api: Api) -> None:
    box.faults.inject("create_technique_run", "status", status=503)
    response = await api.client.post(CREATE, json=SPLIT)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unknown_error"
    assert response.headers["request-id"].startswith("req_")
    assert box.runs == []
    assert [r.status for r in box.requests_for("create_technique_run")] == [503]
    assert (await api.client.post(CREATE, json=SPLIT)).status_code == 200


async def test_status_after_creates_and_charges_the_run_but_answers_the_error() -> None:
    async with serve_sandbox(SandboxConfig(keys={"sk_a": Account(credits=1.0)})) as box:
        async with loopback_client(base_url=box.base_url, headers={"Authorization": "Bearer sk_a"}) as client:
            box.faults.inject("create_technique_run", "status", status=500, when="after")
            response = await client.post("/techniques/flaky-provider/runs", json=_flaky())
            assert response.status_code == 500
            assert len(box.runs) == 1
            assert box.credits() == pytest.approx(0.95)


def _flaky() -> dict[str, object]:
    return {"inputs": [{"id": "prompt", "type": "text", "value": "ok"}], "mode": "async"}


async def test_a_status_fault_can_carry_retry_after_and_any_code(box: Sandbox, api: Api) -> None:
    box.faults.inject("list_techniques", status=429, retry_after=2, count=2)
    for _ in range(2):
        response = await api.client.get("/techniques")
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limited"
        assert response.headers["Retry-After"] == "2"
    assert (await api.client.get("/techniques")).status_code == 200
    box.faults.inject("get_technique", status=409, code="idempotency_duplicate", message="Seen that.")
    assert (await api.client.get("/techniques/cctv-cam")).json()["error"] == {
        "code": "idempotency_duplicate",
        "message": "Seen that.",
    }


async def test_a_wildcard_fault_hits_whatever_route_comes_next(box: Sandbox, api: Api) -> None:
    box.faults.inject("*", status=502)
    assert (await api.client.get("/workspaces")).status_code == 502
    assert (await api.client.get("/workspaces")).status_code == 200


@pytest.mark.parametrize(("when", "runs"), [("before", 0), ("after", 1)])
async def test_drop_closes_the_connection_mid_response(box: Sandbox, api: Api, when: str, runs: int) -> None:
    box.faults.inject("create_technique_run", "drop", when=when)  # type: ignore[arg-type]
    with pytest.raises(httpx.RemoteProtocolError):
        await api.client.post(CREATE, json=SPLIT)
    assert len(box.runs) == runs
    assert box.requests_for("create_technique_run")[0].status == 0
    assert (await api.client.get("/workspaces")).status_code == 200  # the client recovers on a new connection


async def test_a_drop_is_not_logged_as_an_application_error(
    box: Sandbox, api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    box.faults.inject("get_technique", "drop")
    with caplog.at_level(logging.DEBUG), pytest.raises(httpx.RemoteProtocolError):
        await api.client.get("/techniques/cctv-cam")
    await anyio.sleep(0.05)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_stall_before_makes_the_client_time_out_and_creates_nothing(box: Sandbox, api: Api) -> None:
    box.faults.inject("create_technique_run", "stall", seconds=30)
    with pytest.raises(httpx.ReadTimeout):
        await api.client.post(CREATE, json=SPLIT, timeout=0.3)
    [create] = box.requests_for("create_technique_run")
    assert create.status == 0  # the client gave up while the sandbox still held the answer
    assert box.runs == []


async def test_a_short_stall_before_answers_a_gateway_timeout(box: Sandbox, api: Api) -> None:
    box.faults.inject("get_run", "stall", seconds=0.1)
    response = await api.client.get("/runs/run_x")
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "unknown_error"


async def test_stall_after_creates_the_run_then_answers_late(box: Sandbox, api: Api) -> None:
    box.faults.inject("create_technique_run", "stall", seconds=30, when="after")
    with pytest.raises(httpx.ReadTimeout):
        await api.client.post(CREATE, json=SPLIT, timeout=0.3)
    assert len(box.runs) == 1
    box.faults.inject("create_technique_run", "stall", seconds=0.2, when="after")
    started = time.monotonic()
    late = await api.client.post(CREATE, json=SPLIT)
    assert time.monotonic() - started >= 0.2
    assert late.status_code == 200
    assert late.json()["run_id"] == box.runs[1].run_id


@pytest.mark.parametrize(("when", "runs"), [("before", 0), ("after", 1)])
async def test_html_is_a_proxy_error_page(box: Sandbox, api: Api, when: str, runs: int) -> None:
    box.faults.inject("create_technique_run", "html", when=when)  # type: ignore[arg-type]
    response = await api.client.post(CREATE, json=SPLIT)
    assert response.status_code == 502
    assert response.headers["content-type"] == "text/html"
    assert "502 Bad Gateway" in response.text
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert len(box.runs) == runs


@pytest.mark.parametrize(("when", "runs"), [("before", 0), ("after", 1)])
async def test_truncated_is_a_200_with_half_a_json_body(box: Sandbox, api: Api, when: str, runs: int) -> None:
    box.faults.inject("create_technique_run", "truncated", when=when)  # type: ignore[arg-type]
    response = await api.client.post(CREATE, json=SPLIT)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert response.text.startswith('{"run_id":')
    assert len(box.runs) == runs
    if runs:
        assert box.runs[0].run_id in response.text


async def test_after_faults_spoil_reads_too(box: Sandbox, api: Api) -> None:
    run = await api.run("split-text", {"text": "a"})
    box.faults.inject("get_technique_run", "truncated", when="after")
    response = await api.client.get(run["poll_url"])
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert json.dumps(run, separators=(",", ":")).startswith(response.text)
    box.faults.inject("files", status=503)
    assert (await api.client.get(run["outputs"][0]["url"])).status_code == 503


async def test_latency_is_added_to_every_request(box: Sandbox, api: Api) -> None:
    box.state.latency = 0.2
    started = time.monotonic()
    assert (await api.client.get("/workspaces")).status_code == 200
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(
    ("route", "options", "problem"),
    [
        ("create_runs", {}, "unknown route"),
        ("get_run", {"kind": "explode"}, "unknown fault kind"),
        ("get_run", {"count": 0}, "count"),
        ("get_run", {"when": "during"}, "when"),
    ],
)
def test_inject_refuses_nonsense(route: str, options: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Faults().inject(route, **options)  # type: ignore[arg-type]


async def _every_asset_route(api: Api) -> None:
    reserved = (await api.client.post("/assets", json={"source": "signed-url", "workspace_id": "ws_sandbox"})).json()
    target = reserved["upload"]
    async with loopback_client() as bucket:
        files = {"file": ("a.png", png_bytes(), "image/png")}
        assert (await bucket.post(target["url"], data=target["form_fields"], files=files)).status_code == 204
    await api.client.post(f"/assets/{reserved['asset_id']}/complete")
    await api.client.post(f"/assets/{reserved['asset_id']}/retry")
    await api.client.get(f"/assets/{reserved['asset_id']}")
    await api.client.get("/assets")


def test_route_names_are_the_documented_ones() -> None:
    assert ROUTE_NAMES == (
        "list_techniques",
        "get_technique",
        "create_technique_run",
        "get_technique_run",
        "create_run",
        "get_run",
        "list_workspaces",
        "list_technique_runs",
        "create_asset",
        "list_assets",
        "get_asset",
        "complete_asset",
        "retry_asset",
        "bucket_upload",
        "files",
    )


async def test_every_request_is_recorded_in_order_with_its_route(box: Sandbox, api: Api) -> None:
    technique_id = (await api.technique("split-text"))["technique_id"]
    await api.client.get("/techniques", params={"limit": "2", "query": "text"})
    created = await api.client.post(CREATE, json={**SPLIT, "idempotency_key": "k1"})
    run = await api.wait(created.json()["poll_url"])
    top = await api.client.post(
        "/runs/technique",
        json={"technique_id": technique_id, "workspace_id": "ws_sandbox", "inputs": {"text": "b"}},
        headers={"Idempotency-Key": "k2"},
    )
    await api.client.get(f"/runs/{top.json()['run_id']}")
    await api.client.get("/workspaces")
    await api.client.get("/technique-runs")
    await api.client.get(run["outputs"][0]["url"])
    await _every_asset_route(api)
    routes = [r.route for r in box.requests]
    assert routes[0] == "get_technique"
    assert routes[1:3] == ["list_techniques", "create_technique_run"]
    assert set(routes) == set(ROUTE_NAMES)
    listing = box.requests[1]
    assert listing.query == {"limit": "2", "query": "text"}
    assert listing.method == "GET" and listing.path == "/api/v1/techniques"
    create = box.requests_for("create_technique_run")[0]
    assert create.api_key == box.api_key
    assert create.idempotency_key is None  # no header was sent: the key is in the body only
    assert create.body == {**SPLIT, "idempotency_key": "k1"}
    assert create.status == 200
    assert box.requests_for("create_run")[0].idempotency_key == "k2"
    assert [r.run_id for r in box.runs] == [run["run_id"], top.json()["run_id"]]
    assert box.runs[0].slug == "split-text" and box.runs[0].technique_id == technique_id


async def test_a_crash_inside_a_handler_is_a_500_envelope_with_a_request_id(
    box: Sandbox, api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(ref: str) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(box.state.catalog, "find", boom)
    with caplog.at_level(logging.CRITICAL):
        response = await api.client.get("/techniques/cctv-cam")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "unknown_error"
    assert response.headers["request-id"].startswith("req_")


async def test_control_routes_inject_clear_and_report(box: Sandbox, api: Api) -> None:
    control = loopback_client(base_url=box.origin)
    async with control:
        made = await control.post("/_sandbox/faults", json={"route": "get_technique", "status": 500, "count": 3})
        assert made.status_code == 201
        assert made.json()["remaining"] == 3
        assert (await api.client.get("/techniques/cctv-cam")).status_code == 500
        assert (await control.get("/_sandbox/faults")).json()["faults"][0]["remaining"] == 2
        assert (await control.delete("/_sandbox/faults")).status_code == 204
        assert (await api.client.get("/techniques/cctv-cam")).status_code == 200
        bad = await control.post("/_sandbox/faults", json={"route": "nowhere"})
        assert bad.status_code == 422
        assert (await control.put("/_sandbox/latency", json={"seconds": 0.05})).status_code == 200
        assert box.state.latency == 0.05
        log = (await control.get("/_sandbox/requests")).json()["requests"]
        assert [entry["status"] for entry in log] == [500, 200]
        assert log[0]["route"] == "get_technique"
        assert log[0]["request_id"].startswith("req_")


async def test_control_routes_exist_only_when_enabled(shared_box: Sandbox) -> None:
    async with loopback_client(base_url=shared_box.origin) as client:
        response = await client.post("/_sandbox/faults", json={"route": "get_run"})
        assert response.status_code == 404
        assert (await client.get("/_sandbox/requests")).status_code == 404
    assert shared_box.faults.pending == []
