"""Completion callbacks: a run created with `callback_url` is announced there, signed as FLORA signs, once it ended;
and the webhook faults drop, delay, duplicate, forge or age the announcement."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import pytest
from sandbox_support import Api, client_for

from flora_mcp.sandbox import DEFAULT_WEBHOOK_SECRET, Faults, Sandbox, SandboxConfig, serve_sandbox
from tests.support import serve_in_thread

pytestmark = pytest.mark.anyio

SPLIT = {"text": "a\nb"}


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver on loopback: records every POST, answers the statuses of `answers` in turn (then 200)."""

    url: str
    answers: list[int] = field(default_factory=list)
    got: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            rec = holder[0]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with rec.lock:
                rec.got.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                status = rec.answers.pop(0) if rec.answers else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook"))
    with serve_in_thread(server):
        yield holder[0]


def expected_signature(secret: str, header: str, body: bytes) -> tuple[int, str, str]:
    """(t, the v1 sent, the v1 an HMAC-SHA256 of "{t}.{body}" under `secret` gives), computed here independently."""
    parts = dict(part.split("=", 1) for part in header.split(","))
    mac = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return int(parts["t"]), parts["v1"], mac


async def delivered(box: Sandbox, count: int = 1) -> None:
    with anyio.fail_after(10):
        while sum(len(d.answers) for d in box.deliveries) < count:
            await anyio.sleep(0.01)


async def test_a_finished_run_is_announced_once_signed_with_the_secret_over_the_raw_body(
        box: Sandbox, api: Api, receiver: Receiver) -> None:
    response = await api.create("split-text", SPLIT, callback_url=receiver.url)
    assert response.status_code == 200, response.text
    run = await api.wait(response.json()["poll_url"])
    await delivered(box)
    [got] = receiver.got
    event = json.loads(got.body)
    assert event["type"] == "run.completed" and event["id"].startswith("evt_")
    assert event["data"] == {"run_id": run["run_id"], "run_type": "technique", "workspace_id": "ws_sandbox",
                             "status": "completed"}
    assert "outputs" not in json.dumps(event)  # the receiver fetches the run
    assert isinstance(event["created_at"], int) and event["api_version"]
    assert got.headers["flora-event"] == "run.completed"
    assert got.headers["flora-webhook-id"].startswith("whd_")
    timestamp, sent, mac = expected_signature(DEFAULT_WEBHOOK_SECRET, got.headers["flora-signature"], got.body)
    assert hmac.compare_digest(sent, mac)
    assert abs(timestamp - event["created_at"] / 1000) < 60
    [delivery] = box.deliveries
    assert (delivery.run_id, delivery.answers, delivery.fault) == (run["run_id"], [200], None)


async def test_a_failed_run_is_announced_as_run_failed_with_its_error(box: Sandbox, api: Api,
                                                                       receiver: Receiver) -> None:
    response = await api.create("flaky-provider", {"prompt": "please fail"}, callback_url=receiver.url)
    run = await api.wait(response.json()["poll_url"])
    await delivered(box)
    event = json.loads(receiver.got[0].body)
    assert event["type"] == "run.failed" and run["status"] == "failed"
    assert event["data"]["error_code"] == "provider_error" and event["data"]["status"] == "failed"


async def test_a_run_without_a_callback_url_is_announced_nowhere(box: Sandbox, api: Api) -> None:
    await api.run("split-text", SPLIT)
    assert box.deliveries == []


@pytest.mark.parametrize("url", ["https://example.com/hook", "ftp://127.0.0.1/hook", "data:,x", 42])
async def test_a_callback_url_off_loopback_or_not_http_is_refused_and_nothing_is_made(
        box: Sandbox, api: Api, url: object) -> None:
    response = await api.create("split-text", SPLIT, callback_url=url)
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["callback_url"]
    assert box.runs == []


async def test_the_top_level_route_takes_a_callback_url_too(box: Sandbox, api: Api, receiver: Receiver) -> None:
    technique = await api.technique("qr-code-generator")
    response = await api.client.post("/runs/technique", json={
        "technique_id": technique["technique_id"], "workspace_id": "ws_sandbox", "inputs": {"content": "hi"},
        "callback_url": receiver.url})
    assert response.status_code == 200, response.text
    await delivered(box)
    assert json.loads(receiver.got[0].body)["data"]["run_id"] == response.json()["run_id"]


async def test_a_delivery_not_taken_is_tried_again_re_signed_the_same_event(receiver: Receiver) -> None:
    async with serve_sandbox(SandboxConfig(webhook_retry_delay=0.01)) as box:
        async with client_for(box) as client:
            receiver.answers = [503, 429]
            response = await Api(box, client).create("split-text", SPLIT, callback_url=receiver.url)
            assert response.status_code == 200
            await delivered(box, 3)
    assert [d.answers for d in box.deliveries] == [[503, 429, 200]]
    bodies = {r.body for r in receiver.got}
    assert len(bodies) == 1 and len({r.headers["flora-webhook-id"] for r in receiver.got}) == 1


async def test_a_refusal_is_final_and_attempts_stop_at_three(receiver: Receiver) -> None:
    async with serve_sandbox(SandboxConfig(webhook_retry_delay=0.01)) as box:
        async with client_for(box) as client:
            api = Api(box, client)
            receiver.answers = [400, 500, 500, 500]
            await api.create("split-text", SPLIT, callback_url=receiver.url)
            await delivered(box, 1)
            await api.create("split-text", SPLIT, callback_url=receiver.url)
            await delivered(box, 4)
    assert [d.answers for d in box.deliveries] == [[400], [500, 500, 500]]


async def test_drop_sends_nothing_and_records_the_delivery(box: Sandbox, api: Api, receiver: Receiver) -> None:
    box.faults.inject("webhook", "drop")
    response = await api.create("split-text", SPLIT, callback_url=receiver.url)
    await api.wait(response.json()["poll_url"])
    with anyio.fail_after(10):
        while not box.deliveries:
            await anyio.sleep(0.01)
    await api.run("split-text", SPLIT)  # a later request: the dropped one had every chance to arrive
    assert receiver.got == []
    assert [(d.fault, d.answers) for d in box.deliveries] == [("drop", [])]


async def test_duplicate_sends_the_same_event_twice(box: Sandbox, api: Api, receiver: Receiver) -> None:
    box.faults.inject("webhook", "duplicate")
    await api.create("split-text", SPLIT, callback_url=receiver.url)
    await delivered(box, 2)
    first, second = receiver.got
    assert first.body == second.body and json.loads(first.body)["id"] == json.loads(second.body)["id"]


async def test_forge_signs_with_another_secret(box: Sandbox, api: Api, receiver: Receiver) -> None:
    box.faults.inject("webhook", "forge")
    await api.create("split-text", SPLIT, callback_url=receiver.url)
    await delivered(box)
    [got] = receiver.got
    _, sent, mac = expected_signature(DEFAULT_WEBHOOK_SECRET, got.headers["flora-signature"], got.body)
    assert sent != mac


async def test_stale_signs_correctly_ten_minutes_in_the_past(box: Sandbox, api: Api, receiver: Receiver) -> None:
    box.faults.inject("webhook", "stale")
    await api.create("split-text", SPLIT, callback_url=receiver.url)
    await delivered(box)
    [got] = receiver.got
    timestamp, sent, mac = expected_signature(DEFAULT_WEBHOOK_SECRET, got.headers["flora-signature"], got.body)
    assert sent == mac
    assert json.loads(got.body)["created_at"] / 1000 - timestamp >= 590


async def test_delay_holds_the_announcement_back_after_the_run_ended(box: Sandbox, api: Api,
                                                                     receiver: Receiver) -> None:
    box.faults.inject("webhook", "delay", seconds=0.5)
    response = await api.create("split-text", SPLIT, callback_url=receiver.url)
    await api.wait(response.json()["poll_url"])
    assert receiver.got == [] and [d.fault for d in box.deliveries] == ["delay"]  # finished, not yet announced
    await delivered(box)
    assert len(receiver.got) == 1


async def test_webhook_faults_are_injected_over_http_and_never_hit_requests(box: Sandbox, api: Api,
                                                                          receiver: Receiver) -> None:
    control = api.client.base_url.copy_with(path="/_sandbox/faults")
    assert (await api.client.post(control, json={"route": "webhook", "kind": "forge"})).status_code == 201
    bad = await api.client.post(control, json={"route": "webhook", "kind": "status"})
    assert bad.status_code == 422  # not a webhook kind
    assert (await api.client.post(control, json={"route": "get_run", "kind": "duplicate"})).status_code == 422
    box.faults.inject("*", "status", status=503, count=1)
    assert (await api.client.get("/workspaces")).status_code == 503  # "*" took the request
    await api.create("split-text", SPLIT, callback_url=receiver.url)
    await delivered(box)
    listed = (await api.client.get(api.client.base_url.copy_with(path="/_sandbox/webhooks"))).json()
    assert [d["fault"] for d in listed["deliveries"]] == ["forge"]


def test_a_star_fault_never_takes_a_webhook_and_a_webhook_fault_never_takes_a_request() -> None:
    faults = Faults()
    faults.inject("*", "drop")
    assert faults.take("webhook") is None
    faults.clear()
    faults.inject("webhook", "drop")
    assert faults.take("get_run") is None and faults.take("webhook") is not None
    with pytest.raises(ValueError, match="webhook"):
        faults.inject("webhook", "stall")
    with pytest.raises(ValueError, match="get_run"):
        faults.inject("get_run", "forge")


def test_the_secret_must_be_a_whsec_secret() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        SandboxConfig(webhook_secret="sk_not_a_webhook_secret")
