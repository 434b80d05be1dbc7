"""A FLORA-compatible server that spells things differently still works: liberal in what we accept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import AuthenticationError
from flora_mcp.api.models import Technique
from flora_mcp.api.retry import RetryPolicy
from flora_mcp.core.catalog import load_techniques
from tests.support import serve_in_thread

Answer = tuple[int, Any]


class Emulator(BaseHTTPRequestHandler):
    """Answers each path from `routes`: (status, JSON body); `seen` keeps the paths asked for."""

    routes: dict[str, Answer] = {}
    seen: list[str] = []

    def _answer(self) -> None:
        self.seen.append(self.path)
        status, body = self.routes.get(self.path, self.routes.get(urlsplit(self.path).path, (404, {
            "error": {"code": "not_found", "message": "Not found."}})))
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = _answer  # noqa: N815 - http.server's naming

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self._answer()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def emulator() -> Iterator[str]:
    Emulator.routes, Emulator.seen = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Emulator)
    with serve_in_thread(server):
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1"


def client(base: str) -> FloraClient:
    return FloraClient(api_key="sk_live_emulator", base_url=base, retry=RetryPolicy(max_retries=0))


FULL = {"technique_id": "tech_a", "slug": "a", "name": "A", "run_cost": 0.01,
        "inputs": [{"id": "prompt", "name": "Prompt", "type": "text"}], "outputs": []}


@pytest.mark.anyio
async def test_odd_items_duplicates_wrapped_details_and_vanished_techniques(emulator: str) -> None:
    Emulator.routes = {
        "/api/v1/techniques": (200, {"techniques": [
            FULL,
            {"slug": "no-id", "name": "No id at all"},           # unusable: skipped
            {"technique_id": "tech_b", "slug": "b", "name": "B"},  # summary, detail wrapped
            {"technique_id": "tech_gone", "slug": "gone", "name": "Gone"},  # summary, detail 404
            FULL,                                                  # listed twice
        ]}),
        "/api/v1/techniques/b": (200, {"technique": {**FULL, "technique_id": "tech_b", "slug": "b", "name": "B"}}),
    }
    async with client(emulator) as flora:
        techniques = await load_techniques(flora)
    assert [t.technique_id for t in techniques] == ["tech_a", "tech_b"]
    assert techniques[1].inputs and techniques[1].inputs[0].id == "prompt"


@pytest.mark.anyio
@pytest.mark.parametrize(("spelled", "status"), [("queued", "pending"), ("IN_PROGRESS", "running"),
                                                 ("succeeded", "completed"), ("cancelled", "failed")])
async def test_status_synonyms(emulator: str, spelled: str, status: str) -> None:
    Emulator.routes = {"/api/v1/runs/run_1": (200, {"run_id": "run_1", "status": spelled})}
    async with client(emulator) as flora:
        assert (await flora.get_run("run_1")).status == status


@pytest.mark.anyio
async def test_relative_urls_are_resolved_against_flora(emulator: str) -> None:
    origin = emulator.removesuffix("/api/v1")
    Emulator.routes = {
        "/api/v1/techniques/a/runs": (200, {"run_id": "run_1", "status": "pending",
                                            "poll_url": "/api/v1/poll/run_1"}),
        "/api/v1/poll/run_1": (200, {"run_id": "run_1", "status": "completed", "outputs": [
            {"output_id": "o", "type": "imageUrl", "url": "/files/o.png"}]}),
    }
    async with client(emulator) as flora:
        created = await flora.create_run(Technique.model_validate(FULL), {"prompt": "x"}, idempotency_key="k")
        assert created.poll_url == f"{origin}/api/v1/poll/run_1"
        done = await flora.get_run("run_1", technique_ref="a", poll_url=created.poll_url)
    assert done.outputs[0].url == f"{origin}/files/o.png"
    assert Emulator.seen[-1] == "/api/v1/poll/run_1"


@pytest.mark.anyio
@pytest.mark.parametrize("body", [{"error": "Invalid API key."}, {"code": "unauthorized",
                                                                   "message": "Invalid API key."}])
async def test_error_bodies_without_the_nested_envelope(emulator: str, body: dict[str, Any]) -> None:
    Emulator.routes = {"/api/v1/techniques": (401, body)}
    async with client(emulator) as flora:
        with pytest.raises(AuthenticationError) as caught:
            await flora.list_techniques()
    assert caught.value.message == "Invalid API key." and caught.value.code == "unauthorized"
