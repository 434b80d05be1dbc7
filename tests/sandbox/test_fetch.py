"""Input fetching: only loopback and data: URLs, never a redirect elsewhere, with size and time limits."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from flora_mcp.sandbox._fetch import Fetcher, FetchError, check_url, is_loopback_host

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8000/a.png", True),
        ("http://127.8.9.10/a.png", True),
        ("http://localhost/a.png", True),
        ("https://LOCALHOST:9/a.png", True),
        ("http://[::1]:8000/a.png", True),
        ("data:image/png;base64,AAAA", True),
        ("http://example.com/a.png", False),
        ("http://10.0.0.1/a.png", False),
        ("http://169.254.169.254/latest/meta-data", False),
        ("http://127.0.0.1.nip.io/a.png", False),
        ("http://localhost.example.com/a.png", False),
        ("ftp://127.0.0.1/a.png", False),
        ("file:///etc/passwd", False),
        ("http://127.0.0.1:99999/a.png", False),
        ("data:no-comma", False),
        ("", False),
    ],
)
def test_check_url_allows_only_loopback_and_data(url: str, allowed: bool) -> None:
    assert (check_url(url) is None) is allowed


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("0.0.0.0", False), (None, False)])
def test_is_loopback_host(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def fetcher(handler: httpx.MockTransport, tmp_path: Path, *, max_bytes: int = 1000, timeout: float = 2.0) -> Fetcher:
    return Fetcher("http://127.0.0.1:1", tmp_path, max_bytes, timeout, transport=handler)


async def test_a_redirect_to_another_host_is_refused(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"location": "http://example.com/secret"})

    with pytest.raises(FetchError, match="Refused redirect"):
        await fetcher(httpx.MockTransport(handler), tmp_path).fetch("http://127.0.0.1:5000/a.png")
    assert seen == ["http://127.0.0.1:5000/a.png"]


async def test_loopback_redirects_are_followed_a_few_times(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/final":
            return httpx.Response(200, content=b"image")
        return httpx.Response(301, headers={"location": "/final"})

    assert await fetcher(httpx.MockTransport(handler), tmp_path).fetch("http://localhost:5000/start") == b"image"

    def loop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "/again"})

    with pytest.raises(FetchError, match="Too many redirects"):
        await fetcher(httpx.MockTransport(loop), tmp_path).fetch("http://localhost:5000/start")


async def test_a_body_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=b"x" * 1001))
    with pytest.raises(FetchError, match="larger than 1000 bytes"):
        await fetcher(transport, tmp_path).fetch("http://127.0.0.1:5000/big")
    with pytest.raises(FetchError, match="larger than"):
        await fetcher(transport, tmp_path, max_bytes=3).fetch("data:,abcd")


async def test_a_slow_server_times_out(tmp_path: Path) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(5)
        return httpx.Response(200)

    with anyio.fail_after(2), pytest.raises(FetchError, match="longer than"):
        await fetcher(httpx.MockTransport(handler), tmp_path, timeout=0.1).fetch("http://127.0.0.1:5000/slow")


async def test_http_errors_are_fetch_errors(tmp_path: Path) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(404))
    with pytest.raises(FetchError, match="HTTP 404"):
        await fetcher(transport, tmp_path).fetch("http://127.0.0.1:5000/missing")


async def test_the_sandboxs_own_files_are_read_from_disk(tmp_path: Path) -> None:
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "a.png").write_bytes(b"png")
    transport = httpx.MockTransport(lambda request: pytest.fail("no HTTP for own files"))
    own = fetcher(transport, tmp_path)
    assert await own.fetch("http://127.0.0.1:1/files/samples/a.png") == b"png"
    with pytest.raises(FetchError):
        await own.fetch("http://127.0.0.1:1/files/samples/../../outside.png")


@pytest.mark.parametrize(
    ("url", "data"),
    [("data:,hello%20world", b"hello world"), ("data:text/plain;base64,aGk=", b"hi")],
)
async def test_data_urls_decode(tmp_path: Path, url: str, data: bytes) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(500))
    assert await fetcher(transport, tmp_path).fetch(url) == data
