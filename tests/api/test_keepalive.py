"""The schema GETs over kept-alive connections (api/_keepalive.py), against a real HTTP/1.1 server on loopback that
answers each request as the test says: bodies framed every way, connections reused, closed while idle, or dropped."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import httpx
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from flora_mcp.api._keepalive import usable_for
from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import APIConnectionError, NotFoundError
from flora_mcp.api.models import Technique
from flora_mcp.api.retry import RetryPolicy

TECHNIQUE = {"technique_id": "tech_1", "slug": "one", "name": "One", "inputs": [{"id": "prompt", "type": "text"}],
             "outputs": [{"id": "result", "type": "text"}], "run_cost": 0.01}
Answer = Callable[[int], bytes]
"""The raw response to the n-th request of the server (from 0)."""


def framed(body: bytes, *, status: str = "200 OK", extra: str = "", chunked: bool = False) -> bytes:
    if chunked:
        middle = len(body) // 2
        parts = [body[:middle], body[middle:]]
        payload = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"
        return f"HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n{extra}\r\n".encode() + payload
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


@dataclass
class Server:
    port: int
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def http_server(answer: Answer, *, close_after: int | None = None, with_body: bool = False
                      ) -> AsyncIterator[Server]:
    """A server that answers with `answer(n)`; each connection closes after `close_after` answers (never: None).
    With `with_body`, a request's Content-Length bytes are read (and recorded) after its head."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    server = Server(port=listener.extra(anyio.abc.SocketAttribute.local_port))

    async def serve(stream: anyio.abc.SocketStream) -> None:
        server.connections += 1
        reader = BufferedByteReceiveStream(stream)
        answered = 0
        async with stream:
            while close_after is None or answered < close_after:
                try:
                    head = await reader.receive_until(b"\r\n\r\n", 65536)
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    body = await reader.receive_exactly(length) if with_body and length else b""
                except (anyio.IncompleteRead, anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                server.requests.append(head + b"\r\n\r\n" + body if with_body else head)
                raw = answer(len(server.requests) - 1)
                if raw:
                    await stream.send(raw)
                answered += 1
                if not raw or b"Connection: close" in raw:
                    return

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


def client_for(server: Server, **options: object) -> FloraClient:
    return FloraClient(api_key="sk_live_test", base_url=f"http://127.0.0.1:{server.port}/api/v1",
                       retry=RetryPolicy(max_retries=0), **options)  # type: ignore[arg-type]


@pytest.mark.anyio
@pytest.mark.parametrize("style", ["length", "chunked", "gzip", "close"])
async def test_every_framing_reads_the_same_technique(style: str) -> None:
    body = json.dumps(TECHNIQUE).encode()
    raw = {"length": framed(body), "chunked": framed(body, chunked=True),
           "gzip": framed(gzip.compress(body), extra="Content-Encoding: gzip\r\n"),
           "close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body}[style]
    async with http_server(lambda n: raw) as server, client_for(server) as client:
        first = await client.get_technique("one")
        second = await client.get_technique("one")
    assert first.slug == second.slug == "one" and [i.id for i in first.inputs or []] == ["prompt"]
    assert server.connections == (2 if style == "close" else 1)  # kept alive unless the server closes


@pytest.mark.anyio
async def test_the_request_is_httpx_own() -> None:
    body = json.dumps(TECHNIQUE).encode()
    async with http_server(lambda n: framed(body)) as server, client_for(server) as client:
        await client.get_technique("a/b c")
        sent = await client._http.get("techniques/x")  # httpx's own request, for the headers it sends
        assert sent.status_code == 200
    ours, httpx_own = server.requests
    assert ours.split(b"\r\n")[0] == b"GET /api/v1/techniques/a%2Fb%20c HTTP/1.1"
    assert ours.split(b"\r\n")[1:] == httpx_own.split(b"\r\n")[1:]  # Host, Accept-Encoding, key, User-Agent...


@pytest.mark.anyio
async def test_concurrent_gets_open_connections_and_keep_them() -> None:
    body = json.dumps(TECHNIQUE).encode()
    async with http_server(lambda n: framed(body)) as server, client_for(server) as client:
        for _ in range(2):
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(client.get_technique, "one")
    assert len(server.requests) == 16
    assert 1 < server.connections <= 8  # the second round reused the first round's connections


@pytest.mark.anyio
async def test_a_connection_closed_while_idle_is_replaced_without_an_error() -> None:
    body = json.dumps(TECHNIQUE).encode()
    async with http_server(lambda n: framed(body), close_after=1) as server, client_for(server) as client:
        await client.get_technique("one")
        await anyio.sleep(0.05)  # the server has closed the connection meanwhile
        await client.get_technique("one")
    assert server.connections == 2 and len(server.requests) == 2


@pytest.mark.anyio
async def test_an_error_status_is_the_clients_error_as_before() -> None:
    envelope = json.dumps({"error": {"code": "not_found", "message": "No such technique."}}).encode()
    async with http_server(lambda n: framed(envelope, status="404 Not Found")) as server, \
            client_for(server) as client:
        with pytest.raises(NotFoundError, match="No such technique"):
            await client.get_technique("gone")
    assert len(server.requests) == 1


@pytest.mark.anyio
async def test_a_body_cut_short_is_a_connection_error() -> None:
    async with http_server(lambda n: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{}") \
            as server, client_for(server) as client:
        with pytest.raises(APIConnectionError, match="complete message body"):
            await client.get_technique("one")


@pytest.mark.anyio
async def test_nothing_answered_on_a_new_connection_is_a_connection_error() -> None:
    async with http_server(lambda n: b"") as server, client_for(server) as client:
        with pytest.raises(APIConnectionError, match="without sending a response"):
            await client.get_technique("one")
    assert server.connections == 1  # a new connection is not asked again


def test_only_direct_http_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert usable_for("https://app.flora.ai/api/v1") and usable_for("http://127.0.0.1:1/api/v1")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert not usable_for("https://app.flora.ai/api/v1")  # httpx would go through the proxy: so does the client
    assert FloraClient(api_key="k", base_url="https://app.flora.ai/api/v1")._kept is None
    monkeypatch.delenv("HTTPS_PROXY")
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=TECHNIQUE))
    assert FloraClient(api_key="k", base_url="https://app.flora.ai/api/v1", transport=transport)._kept is None


@pytest.mark.anyio
async def test_polls_of_runs_go_over_the_kept_alive_connections() -> None:
    run = json.dumps({"run_id": "run_1", "status": "running", "progress": 40,
                      "poll_url": "/api/v1/technique-runs/run_1"}).encode()
    async with http_server(lambda n: framed(run)) as server, client_for(server) as client:
        for _ in range(3):
            polled = await client.get_run("run_1", poll_url="/api/v1/technique-runs/run_1")
        assert polled.status == "running"
        kept_idle = len(client._kept._idle) if client._kept is not None else 0
    assert [r.split(b"\r\n")[0] for r in server.requests] == [b"GET /api/v1/technique-runs/run_1 HTTP/1.1"] * 3
    assert server.connections == 1 and kept_idle == 1  # one connection, kept between the polls


@pytest.mark.anyio
async def test_no_more_connections_open_at_once_than_allowed() -> None:
    from flora_mcp.api._keepalive import KeepAliveRequests

    body = json.dumps(TECHNIQUE).encode()
    async with http_server(lambda n: framed(body)) as server, client_for(server) as client:
        client._kept = KeepAliveRequests(timeout=5, connect_timeout=5, max_connections=3)
        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(client.get_technique, "one")
    assert len(server.requests) == 12
    assert server.connections == 3  # the other nine waited for one of the three, and reused it


RUN = json.dumps({"run_id": "run_1", "status": "pending", "poll_url": "/api/v1/technique-runs/run_1"}).encode()


def technique() -> Technique:
    return Technique.model_validate(TECHNIQUE)


def body_of(request: bytes) -> bytes:
    return request.partition(b"\r\n\r\n")[2]


@pytest.mark.anyio
async def test_a_create_goes_over_the_kept_alive_connections_as_httpx_would_send_it() -> None:
    async with http_server(lambda n: framed(RUN), with_body=True) as server, client_for(server) as client:
        run = await client.create_run(technique(), {"prompt": "a cat"}, idempotency_key="key-1")
        await client.get_run(run.run_id, poll_url=run.poll_url)
        own = client._http.build_request(
            "POST", "techniques/one/runs", headers={"Idempotency-Key": "key-1"},
            json={"inputs": [{"id": "prompt", "type": "text", "value": "a cat"}], "mode": "async",
                  "idempotency_key": "key-1"})
    create, poll = server.requests
    assert create.split(b"\r\n")[0] == b"POST /api/v1/techniques/one/runs HTTP/1.1"
    assert b"\r\nIdempotency-Key: key-1\r\n" in create
    assert body_of(create) == own.content  # httpx's own JSON, byte for byte
    assert f"Content-Length: {len(own.content)}".encode() in create
    assert poll.startswith(b"GET /api/v1/technique-runs/run_1 ") and server.connections == 1


@pytest.mark.anyio
async def test_a_keyed_create_on_a_connection_closed_while_idle_goes_again_with_the_same_key() -> None:
    async with http_server(lambda n: framed(RUN), close_after=1, with_body=True) as server, \
            client_for(server) as client:
        await client.get_run("run_1", poll_url="/api/v1/technique-runs/run_1")
        await anyio.sleep(0.05)  # the server has closed the connection meanwhile
        run = await client.create_run(technique(), {"prompt": "a cat"}, idempotency_key="key-2")
    assert run.run_id == "run_1" and server.connections == 2
    assert b"Idempotency-Key: key-2" in server.requests[1]


@pytest.mark.anyio
async def test_a_create_with_no_answer_is_an_unknown_outcome_not_a_refusal() -> None:
    """The request left: FLORA may have made the run. It is not sent again on the new connection, and the error says
    the outcome is unknown (the run lifecycle then looks for the run rather than releasing the hold)."""
    async with http_server(lambda n: b"", with_body=True) as server, client_for(server) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.create_run(technique(), {"prompt": "a cat"}, idempotency_key="key-3")
    assert caught.value.outcome_unknown and caught.value.maybe_sent
    assert server.connections == 1 and len(server.requests) == 1


@pytest.mark.anyio
async def test_a_post_without_a_key_is_never_sent_twice() -> None:
    from flora_mcp.api._keepalive import KeepAliveRequests

    async with http_server(lambda n: framed(RUN), close_after=1, with_body=True) as server:
        kept = KeepAliveRequests(timeout=5, connect_timeout=5)
        url = f"http://127.0.0.1:{server.port}/api/v1/x"
        await kept.send(httpx.Request("GET", url))
        await anyio.sleep(0.05)
        with pytest.raises(httpx.RemoteProtocolError):
            await kept.send(httpx.Request("POST", url, json={"a": 1}))
        await kept.aclose()
    assert server.connections == 1  # not sent again on a new one


@pytest.mark.anyio
async def test_a_connection_idle_longer_than_the_expiry_is_not_used_again() -> None:
    from flora_mcp.api._keepalive import KeepAliveRequests

    body = json.dumps(TECHNIQUE).encode()
    async with http_server(lambda n: framed(body)) as server, client_for(server) as client:
        client._kept = KeepAliveRequests(timeout=5, connect_timeout=5, keepalive_expiry=0.2)
        await client.get_technique("one")
        await client.get_technique("one")  # at once: the same connection
        await anyio.sleep(0.3)
        await client.get_technique("one")  # idle too long: a new one
        await client._kept.aclose()
    assert len(server.requests) == 3 and server.connections == 2
