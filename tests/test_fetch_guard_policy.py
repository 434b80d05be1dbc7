"""The fetch guard's words and settings: the reason each refusal gives, what the resolver is asked, the port FLORA's
own loopback is allowed at, and the client (no pooling, no environment proxies, its User-Agent) over real loopback
HTTP. The address matrix and the pin are in test_fetch_guard.py.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from flora_mcp._fetch_guard import (
    FetchPolicy,
    FetchRefused,
    address_refusal,
    guarded_client,
    guarded_stream,
    system_resolver,
)
from flora_mcp._version import __version__
from tests.support import serve_in_thread

REAL_FLORA = "https://app.flora.ai/api/v1"


@pytest.mark.parametrize(("address", "reason"), [
    ("0.0.0.0", "an unspecified address"),
    ("127.0.0.1", "a loopback address"),
    ("169.254.169.254", "a link-local address"),
    ("224.0.0.1", "a multicast address"),
    ("10.0.0.5", "a private address"),
    ("4000::1", "a reserved address"),  # not allocated yet (240.0.0.0/4 counts as private before reserved)
    ("100.64.0.1", "not a public address"),
    ("::ffff:8.8.8.8", "an IPv4-mapped address (of 8.8.8.8)"),
    ("64:ff9b::a9fe:a9fe", "an address embedding 169.254.169.254 (link-local)"),
    ("8.8.8.8", None),
])
def test_each_refusal_names_the_kind_of_address_with_its_article(address: str, reason: str | None) -> None:
    assert address_refusal(ipaddress.ip_address(address), port=443) == reason


def test_loopback_is_allowed_only_at_the_ports_given() -> None:
    loopback = ipaddress.ip_address("127.0.0.1")
    assert address_refusal(loopback, port=8123, loopback_ports=frozenset({8123})) is None
    assert address_refusal(loopback, port=8124, loopback_ports=frozenset({8123})) == "a loopback address"


@pytest.mark.anyio
@pytest.mark.parametrize(("url", "message"), [
    ("ftp://cdn.flora.ai/a.png", "only https URLs are fetched, not ftp URL of cdn.flora.ai"),
    ("/files/a.png", "only https URLs are fetched, not a relative URL (not an absolute URL)"),
    ("https://user:pw@8.8.8.8/", "a URL with credentials in it is not fetched"),
    ("https://10.0.0.5/", "10.0.0.5 is a private address: only public addresses are fetched"),
])
async def test_a_refused_url_says_exactly_why(url: str, message: str) -> None:
    with pytest.raises(FetchRefused) as refused:
        await FetchPolicy.for_flora(REAL_FLORA).check(url)
    assert str(refused.value) == message


class Answers:
    """A resolver that answers `found` (or raises it) and records each (host, port) it was asked."""

    def __init__(self, found: Sequence[str] | OSError) -> None:
        self.found = found
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append((host, port))
        if isinstance(self.found, OSError):
            raise self.found
        return self.found


@pytest.mark.anyio
@pytest.mark.parametrize(("url", "port"), [("https://cdn.example/a", 443), ("https://cdn.example:8443/a", 8443)])
async def test_the_resolver_is_asked_for_the_name_at_the_port_of_the_request(url: str, port: int) -> None:
    resolver = Answers(["93.184.216.34"])
    await FetchPolicy(resolver=resolver).check(url)
    assert resolver.asked == [("cdn.example", port)]


@pytest.mark.anyio
@pytest.mark.parametrize(("found", "message"), [
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
     "cannot resolve cdn.example: Name or service not known"),
    (OSError(), "cannot resolve cdn.example: OSError"),
    (["not-an-address"], "cdn.example resolved to 'not-an-address', not an address"),
    ([], "cdn.example resolved to no address"),
])
async def test_a_name_that_does_not_resolve_to_addresses_is_refused_by_name(found: Sequence[str] | OSError,
                                                                           message: str) -> None:
    with pytest.raises(FetchRefused) as refused:
        await FetchPolicy(resolver=Answers(found)).check("https://cdn.example/a")
    assert str(refused.value) == message


@pytest.mark.parametrize(("base", "ports"), [
    ("http://localhost/api/v1", {80}),
    ("https://127.0.0.1/api/v1", {443}),
    ("http://127.0.0.1:8123/api/v1", {8123}),
    (REAL_FLORA, set()),
])
def test_beside_flora_on_loopback_its_own_port_is_allowed_default_ports_included(base: str, ports: set[int]) -> None:
    assert FetchPolicy.for_flora(base).loopback_ports == ports


@pytest.mark.anyio
async def test_the_system_resolver_gives_each_address_once() -> None:
    assert await system_resolver("127.0.0.1", 443) == ["127.0.0.1"]


def test_the_guarded_client_follows_nothing_trusts_no_environment_and_says_who_it_is() -> None:
    client = guarded_client(timeout=7)  # not httpx's default of 5
    assert client.timeout == httpx.Timeout(7)
    assert client.follow_redirects is False and client.trust_env is False
    assert client.headers["User-Agent"] == f"flora-mcp/{__version__}"


class _Peers(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive on offer: only the client can decline it
    seen: list[tuple[int, str]]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class names it so
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.seen.append((self.client_address[1], self.headers.get("User-Agent", "")))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def peers() -> Iterator[tuple[str, FetchPolicy, list[tuple[int, str]]]]:
    seen: list[tuple[int, str]] = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Peers,), {"seen": seen}))
    httpd.daemon_threads = True
    port = httpd.server_address[1]
    with serve_in_thread(httpd):
        yield f"http://127.0.0.1:{port}/x", FetchPolicy(loopback_ports=frozenset({port})), seen


async def _get(client: httpx.AsyncClient, url: str, policy: FetchPolicy) -> bytes:
    async with guarded_stream(client, "GET", url, policy=policy) as response:
        return await response.aread()


@pytest.mark.anyio
async def test_no_connection_is_kept_for_the_next_request(
        peers: tuple[str, FetchPolicy, list[tuple[int, str]]]) -> None:
    url, policy, seen = peers
    async with guarded_client(timeout=5) as client:
        assert [await _get(client, url, policy) for _ in range(3)] == [b"ok"] * 3
    assert len({port for port, _ in seen}) == 3
    assert {agent for _, agent in seen} == {f"flora-mcp/{__version__}"}


@pytest.mark.anyio
async def test_proxies_from_the_environment_are_not_used(peers: tuple[str, FetchPolicy, list[tuple[int, str]]],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    url, policy, seen = peers
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # a proxy would resolve the name itself: never asked
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with guarded_client(timeout=5) as client:
        assert await _get(client, url, policy) == b"ok"
    assert len(seen) == 1


@pytest.mark.anyio
async def test_the_guarded_client_goes_over_the_transport_it_is_given() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200, content=b"swapped")

    policy = FetchPolicy(loopback_ports=frozenset({8123}))
    async with guarded_client(timeout=5, transport=httpx.MockTransport(answer)) as client:
        assert await _get(client, "http://127.0.0.1:8123/a", policy) == b"swapped"
    assert asked == ["http://127.0.0.1:8123/a"]
