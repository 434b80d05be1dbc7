"""Answers FLORA should never give: each is a clear error naming the endpoint and the request-id, never a crash."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from flora_mcp.api.client import FloraClient
from flora_mcp.api.retry import RetryPolicy
from flora_mcp.config import Settings
from flora_mcp.core.toolkit import Toolkit
from tests.support import serve_in_thread

TECHNIQUE = {"technique_id": "tech_odd", "slug": "odd", "name": "Odd", "run_cost": 0.01,
             "inputs": [{"id": "prompt", "name": "Prompt", "type": "text"}], "outputs": []}
RUN = {"run_id": "run_odd", "status": "pending", "progress": 0, "created_at": 1}


class OddFlora(BaseHTTPRequestHandler):
    """A FLORA whose run retrieve answers whatever `poll_answer` says."""

    poll_answer: tuple[int, str, bytes] = (200, "application/json", b"{}")

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("request-id", "req_odd123")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.startswith("/api/v1/techniques?"):
            self._send(200, "application/json", json.dumps({"techniques": [TECHNIQUE], "meta": {}}).encode())
        else:
            self._send(*self.poll_answer)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self._send(200, "application/json", json.dumps(RUN).encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def odd_flora() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), OddFlora)
    with serve_in_thread(server):
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1"


CASES = [
    pytest.param((200, "text/html", b"<html>oops</html>"), "is not JSON", id="html-200"),
    pytest.param((200, "application/json", b'{"run_id": "run_odd", "status": "pen'), "is not JSON", id="truncated"),
    pytest.param((200, "application/json", json.dumps({"status": "running"}).encode()), "run_id", id="missing-id"),
    pytest.param((200, "application/json", json.dumps({**RUN, "status": "exploded"}).encode()), "status",
                 id="unknown-status"),
    pytest.param((200, "application/json", b"[1, 2]"), "unexpected answer", id="not-an-object"),
    pytest.param((200, "application/json", json.dumps({**RUN, "run_id": "run_other"}).encode()), "run_other",
                 id="someone-elses-run"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("answer", "words"), CASES)
async def test_a_malformed_poll_answer_is_a_clear_error_with_the_run_id(
        odd_flora: str, answer: tuple[int, str, bytes], words: str) -> None:
    OddFlora.poll_answer = answer
    settings = Settings(api_key="sk_live_odd", base_url=odd_flora, journal=":memory:", poll_interval=0.01,
                        catalog_cache="off")
    client = FloraClient(api_key="sk_live_odd", base_url=odd_flora, retry=RetryPolicy(max_retries=1,
                                                                                     initial_delay=0.01))
    async with client, Toolkit(settings, client=client) as kit:
        result = await kit.call("odd", {"prompt": "hi"})
    assert result.is_error and result.status == "error"
    assert result.error_code == "malformed_response"
    assert result.run_id == "run_odd"  # the run is not lost
    assert words in (result.error_message or "")
    assert "GET /techniques/{id}/runs/{run}" in (result.error_message or "") or "poll_url" in (
        result.error_message or "")
    assert result.request_id == "req_odd123"
    assert "flora_get_run" in (result.next_step or "")
