"""FloraClient over `httpx.MockTransport`: exactly what each call sends, and how each unusable answer is named (its
endpoint and FLORA's request-id, which a support request needs). The error mapping and retries are in test_client.py.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import APIResponseError, ServerError
from flora_mcp.api.retry import RetryPolicy
from flora_mcp.logs import REDACTED, redact
from tests.api.test_client import BASE, RID, RUN, TECHNIQUE, Script, flora, ok

Call = Callable[[FloraClient], Awaitable[Any]]

WORKSPACE_RUN = {**RUN, "poll_url": None}


async def _create(client: FloraClient) -> Any:
    return await client.create_run(TECHNIQUE, {"input_image": "https://x.test/a.png"}, idempotency_key="idem_1")


async def _create_in_workspace(client: FloraClient) -> Any:
    return await client.create_run(TECHNIQUE, {"caption": "hi"}, idempotency_key="idem_2", workspace_id="ws_1")


CALLS: list[Any] = [
    pytest.param(lambda c: c.list_techniques_page(), "GET /techniques", id="list techniques"),
    pytest.param(lambda c: c.get_technique("cctv-cam"), "GET /techniques/{id}", id="get technique"),
    pytest.param(_create, "POST /techniques/{id}/runs", id="create"),
    pytest.param(_create_in_workspace, "POST /runs/technique", id="create in a workspace"),
    pytest.param(lambda c: c.get_run("run_1", poll_url=f"{BASE}/techniques/cctv-cam/runs/run_1"), "GET poll_url",
                 id="poll"),
    pytest.param(lambda c: c.get_run("run_1", technique_ref="cctv-cam"), "GET /techniques/{id}/runs/{run}",
                 id="get run by technique"),
    pytest.param(lambda c: c.get_run("run_1"), "GET /runs/{run}", id="get run"),
    pytest.param(lambda c: c.list_technique_runs(), "GET /technique-runs", id="recent runs"),
    pytest.param(lambda c: c.list_workspaces(), "GET /workspaces", id="workspaces"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("call", "endpoint"), CALLS)
async def test_an_answer_of_the_wrong_shape_names_the_endpoint_and_the_request_id(call: Call, endpoint: str) -> None:
    async with flora(Script(ok("a string, not an object")), max_retries=0) as client:
        with pytest.raises(APIResponseError) as raised:
            await call(client)
    error = raised.value
    assert (error.endpoint, error.request_id) == (endpoint, RID)
    lists = {"GET /techniques": "techniques", "GET /technique-runs": "technique_runs", "GET /workspaces": "workspaces"}
    if endpoint in lists:
        assert error.message == f"{endpoint}: the answer has no '{lists[endpoint]}' list"
    else:
        model = "Technique" if endpoint == "GET /techniques/{id}" else "Run"
        assert error.message == (f"{endpoint}: unexpected answer (body: Input should be a valid dictionary or "
                                 f"instance of {model}, request-id {RID})")


@pytest.mark.anyio
@pytest.mark.parametrize(("call", "endpoint"), CALLS)
async def test_an_answer_that_is_not_json_names_the_endpoint_type_and_size(call: Call, endpoint: str) -> None:
    answer = Script(lambda r: httpx.Response(200, content=b"<html>portal</html>",
                                             headers={"content-type": "text/html; charset=utf-8", "x-request-id": RID}))
    async with flora(answer, max_retries=0) as client:
        with pytest.raises(APIResponseError) as raised:
            await call(client)
    assert (raised.value.endpoint, raised.value.request_id) == (endpoint, RID)
    assert raised.value.message == f"{endpoint}: the answer is not JSON (HTTP 200, text/html, 19 bytes)"


@pytest.mark.anyio
async def test_an_answer_without_a_content_type_says_so() -> None:
    async with flora(Script(lambda r: httpx.Response(200, content=b"nope")), max_retries=0) as client:
        with pytest.raises(APIResponseError, match=r"\(HTTP 200, no content type, 4 bytes\)"):
            await client.get_technique("cctv-cam")


@pytest.mark.anyio
@pytest.mark.parametrize("status", [300, 301, 307, 308])
async def test_every_3xx_is_an_unexpected_redirect_with_its_request_id(status: int) -> None:
    script = Script(lambda r: httpx.Response(status, headers={"location": f"{BASE}/x", "request-id": RID}))
    async with flora(script, max_retries=0) as client:
        with pytest.raises(APIResponseError) as raised:
            await client.get_technique("cctv-cam")
    assert raised.value.message == f"GET /techniques/{{id}}: unexpected redirect (HTTP {status})"
    assert (raised.value.endpoint, raised.value.request_id) == ("GET /techniques/{id}", RID)
    assert len(script.requests) == 1


@pytest.mark.anyio
async def test_a_run_answered_for_another_id_is_refused_by_name() -> None:
    async with flora(Script(ok({**RUN, "run_id": "run_2"})), max_retries=0) as client:
        with pytest.raises(APIResponseError) as raised:
            await client.get_run("run_1", technique_ref="cctv-cam")
    assert raised.value.message == "GET /techniques/{id}/runs/{run}: asked for run run_1, got run_2"
    assert (raised.value.endpoint, raised.value.request_id) == ("GET /techniques/{id}/runs/{run}", RID)


@pytest.mark.anyio
async def test_a_create_sends_typed_inputs_async_mode_and_the_key_in_header_and_body() -> None:
    script = Script(ok(RUN, 201))
    async with flora(script) as client:
        await client.create_run(TECHNIQUE, {"input_image": "https://x.test/a.png", "extra": "v"},
                                idempotency_key="idem_1")
    [request] = script.requests
    assert (request.method, str(request.url)) == ("POST", f"{BASE}/techniques/cctv-cam/runs")
    assert request.headers["Idempotency-Key"] == "idem_1"
    assert script.bodies() == [{
        "inputs": [{"id": "input_image", "type": "imageUrl", "value": "https://x.test/a.png"},
                   {"id": "extra", "type": "text", "value": "v"}],  # an input the schema does not name: text
        "mode": "async", "idempotency_key": "idem_1"}]


@pytest.mark.anyio
async def test_a_create_in_a_workspace_goes_to_runs_technique_with_inputs_by_id() -> None:
    script = Script(ok(WORKSPACE_RUN, 201))
    async with flora(script) as client:
        await _create_in_workspace(client)
    [request] = script.requests
    assert (request.method, str(request.url)) == ("POST", f"{BASE}/runs/technique")
    assert request.headers["Idempotency-Key"] == "idem_2"
    assert script.bodies() == [{"technique_id": "tech_cctv", "workspace_id": "ws_1", "inputs": {"caption": "hi"},
                                "idempotency_key": "idem_2"}]


@pytest.mark.anyio
async def test_reads_are_gets_to_the_routes_they_name_with_ids_escaped() -> None:
    script = Script(lambda r: httpx.Response(200, json={**RUN, "run_id": "r/1"} if "runs" in r.url.path
                                             else TECHNIQUE.model_dump()))
    async with flora(script) as client:
        await client.get_technique("a/b c")
        await client.get_run("r/1")
        await client.get_run("r/1", technique_ref="a/b")
    assert [(r.method, r.url.raw_path.decode()) for r in script.requests] == [
        ("GET", "/api/v1/techniques/a%2Fb%20c"), ("GET", "/api/v1/runs/r%2F1"),
        ("GET", "/api/v1/techniques/a%2Fb/runs/r%2F1")]


@pytest.mark.anyio
async def test_recent_runs_default_to_fifty_and_pass_the_cursor() -> None:
    script = Script(ok({"technique_runs": []}))
    async with flora(script) as client:
        await client.list_technique_runs()
        await client.list_technique_runs(cursor="c9")
    assert [r.method for r in script.requests] == ["GET", "GET"]
    assert [dict(r.url.params) for r in script.requests] == [{"limit": "50"}, {"limit": "50", "cursor": "c9"}]


@pytest.mark.anyio
async def test_workspaces_are_listed_and_odd_items_skipped(caplog: pytest.LogCaptureFixture) -> None:
    script = Script(ok({"workspaces": [{"workspace_id": "ws_1", "name": "Studio"}, {"name": "no id"}]}))
    with caplog.at_level(logging.WARNING, logger="flora_mcp.api"):
        async with flora(script) as client:
            workspaces = await client.list_workspaces()
    assert [(w.workspace_id, w.name) for w in workspaces] == [("ws_1", "Studio")]
    assert [(r.method, r.url.path) for r in script.requests] == [("GET", "/api/v1/workspaces")]
    [record] = caplog.records
    assert record.getMessage().startswith("skipping an item of GET /workspaces: GET /workspaces: unexpected answer "
                                          f"(workspace_id: Field required, request-id {RID})")


@pytest.mark.anyio
async def test_a_page_of_nothing_but_odd_items_is_an_error() -> None:
    async with flora(Script(ok({"techniques": [{"name": "no id"}, 3]})), max_retries=0) as client:
        with pytest.raises(APIResponseError) as raised:
            await client.list_techniques_page()
    assert raised.value.message == ("GET /techniques: unexpected answer (technique_id: Field required, "
                                    f"request-id {RID})")
    assert raised.value.request_id == RID


@pytest.mark.anyio
@pytest.mark.parametrize("wrapper", ["data", "items"])
async def test_a_list_may_come_as_data_or_items(wrapper: str) -> None:
    async with flora(Script(ok({wrapper: [{"technique_id": "t1"}], "nextCursor": "c2"}))) as client:
        techniques, cursor = await client.list_techniques_page()
    assert [t.technique_id for t in techniques] == ["t1"] and cursor == "c2"


@pytest.mark.anyio
async def test_a_cursor_that_is_not_a_string_ends_the_list() -> None:
    async with flora(Script(ok({"techniques": [], "meta": {"next_cursor": 7}, "next_cursor": ""}))) as client:
        assert await client.list_techniques_page() == ([], None)


@pytest.mark.anyio
async def test_a_wrapped_object_with_one_extra_key_is_unwrapped_but_not_with_more() -> None:
    async with flora(Script(ok({"run": RUN, "meta": {}}))) as client:
        assert (await client.get_run("run_1")).run_id == "run_1"
    async with flora(Script(ok({"run": RUN, "meta": {}, "more": 1})), max_retries=0) as client:
        with pytest.raises(APIResponseError, match="unexpected answer"):
            await client.get_run("run_1")
    async with flora(Script(ok({"run": {"status": "pending"}})), max_retries=0) as client:
        with pytest.raises(APIResponseError, match=r"unexpected answer \(run_id: Field required"):
            await client.get_run("run_1")


@pytest.mark.anyio
async def test_an_unexpected_answer_names_at_most_three_problems_by_their_path() -> None:
    body = {"run_id": "run_1", "status": "nonsense", "progress": "x", "created_at": "y",
            "outputs": [{"output_id": "o"}]}
    async with flora(Script(ok(body)), max_retries=0) as client:
        with pytest.raises(APIResponseError) as raised:
            await client.get_run("run_1")
    problems = raised.value.message.split("unexpected answer (", 1)[1].rsplit(", request-id", 1)[0].split("; ")
    assert len(problems) == 3 and problems[0].startswith("status: ")
    assert problems[1].startswith("progress: ") and problems[2].startswith("created_at: ")
    async with flora(Script(ok({"run_id": "run_1", "outputs": [{"output_id": "o"}]})), max_retries=0) as client:
        with pytest.raises(APIResponseError, match=r"\(outputs\.0\.url: Field required, request-id"):
            await client.get_run("run_1")


@pytest.mark.anyio
async def test_without_a_request_id_the_message_does_not_pretend_one() -> None:
    async with flora(Script(lambda r: httpx.Response(200, json={"x": 1})), max_retries=0) as client:
        with pytest.raises(APIResponseError) as raised:
            await client.get_run("run_1")
    assert raised.value.request_id is None
    assert raised.value.message == "GET /runs/{run}: unexpected answer (run_id: Field required)"


@pytest.mark.anyio
async def test_relative_urls_in_a_run_are_made_absolute_against_the_base() -> None:
    run = {**RUN, "outputs": [{"output_id": "o1", "url": "files/o1.png"}, {"output_id": "o2", "url": "/f/o2.png"}]}
    async with flora(Script(ok(run))) as client:
        got = await client.get_run("run_1")
    assert [o.url for o in got.outputs] == [f"{BASE}/files/o1.png", "https://flora.test/f/o2.png"]
    assert got.poll_url == f"{BASE}/techniques/cctv-cam/runs/run_1"


@pytest.mark.anyio
async def test_a_base_url_with_a_trailing_slash_is_the_same_base() -> None:
    script = Script(ok(TECHNIQUE.model_dump()))
    async with FloraClient(api_key="k", base_url=BASE + "//", transport=httpx.MockTransport(script)) as client:
        await client.get_technique("cctv-cam")
        assert client.base_url == BASE
    assert str(script.requests[0].url) == f"{BASE}/techniques/cctv-cam"


@pytest.mark.anyio
@pytest.mark.parametrize(("timeout", "connect"), [(30.0, 10.0), (4.0, 4.0)])
async def test_each_request_carries_the_timeout_and_a_connect_timeout_no_longer(timeout: float,
                                                                               connect: float) -> None:
    script = Script(ok(TECHNIQUE.model_dump()))
    transport = httpx.MockTransport(script)
    async with FloraClient(api_key="k", base_url=BASE, timeout=timeout, transport=transport) as client:
        await client.get_technique("cctv-cam")
        # The uploads path builds its own requests from these.
        assert (client.timeout, client.transport) == (timeout, transport)
    assert script.requests[0].extensions["timeout"] == {"connect": connect, "read": timeout, "write": timeout,
                                                        "pool": timeout}


def test_a_key_of_any_shape_is_redacted_once_a_client_holds_it() -> None:
    key = f"plain0key0{uuid.uuid4().hex}"  # new to this process, however often the test runs in it
    assert redact(f"echo {key}") == f"echo {key}"
    FloraClient(api_key=key, base_url=BASE)
    assert redact(f"echo {key}") == f"echo {REDACTED}"


@pytest.mark.anyio
async def test_a_repeating_cursor_is_logged_with_the_cursor_and_the_count(caplog: pytest.LogCaptureFixture) -> None:
    page = {"techniques": [{"technique_id": "tech_1"}], "meta": {"next_cursor": "again"}}
    with caplog.at_level(logging.WARNING, logger="flora_mcp.api"):
        async with flora(Script(ok(page))) as client:
            await client.list_techniques(limit=1)
    assert [r.getMessage() for r in caplog.records] == [
        "GET /techniques repeated cursor 'again'; stopping after 2 techniques"]


@pytest.mark.anyio
async def test_a_retry_is_logged_with_its_wait(caplog: pytest.LogCaptureFixture) -> None:
    script = Script(lambda r: httpx.Response(503, json={"error": {"code": "unknown_error", "message": "busy"}}),
                    ok(TECHNIQUE.model_dump()))
    policy = RetryPolicy(initial_delay=0.0, max_delay=0.0)
    with caplog.at_level(logging.WARNING, logger="flora_mcp.api"):
        async with FloraClient(api_key="k", base_url=BASE, retry=policy,
                               transport=httpx.MockTransport(script)) as client:
            await client.get_technique("cctv-cam")
    assert [r.getMessage() for r in caplog.records] == [
        "GET /techniques/{id} failed (unknown_error); retry 1/3 in 0.00s"]
    assert len(script.requests) == 2


@pytest.mark.anyio
async def test_retries_end_with_the_last_error() -> None:
    script = Script(lambda r: httpx.Response(503, json={"error": {"code": "unknown_error", "message": "busy"}}))
    async with FloraClient(api_key="k", base_url=BASE, retry=RetryPolicy(max_retries=2, initial_delay=0.0),
                           transport=httpx.MockTransport(script)) as client:
        with pytest.raises(ServerError):
            await client.get_technique("cctv-cam")
    assert len(script.requests) == 3
