"""Previews of image outputs: the download policy refuses what it must, and a real image arrives small."""

from __future__ import annotations

import base64
import io
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import mcp.types as types
import pytest
from PIL import Image

from flora_mcp.core.previews import (
    PREVIEW_MAX_SIDE,
    FetchRefused,
    fetch_output,
    is_image_type,
    make_preview,
    make_previews,
)
from flora_mcp.core.results import OutputFile
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from tests.support import mcp_client, serve_in_thread, settings_for

REAL_FLORA = "https://app.flora.ai/api/v1"
BIG = 11 * 1024 * 1024


def _png(width: int, height: int, mode: str = "RGB") -> bytes:
    image = Image.new(mode, (width, height), (200, 40, 40, 128) if mode == "RGBA" else (200, 40, 40))
    image.putpixel((0, 0), (0, 0, 0, 255) if mode == "RGBA" else (0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


WIDE_PNG = _png(2000, 1000)


class _Handler(BaseHTTPRequestHandler):
    """Answers by path; records every path it is asked for."""

    seen: list[str]
    release: threading.Event

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class names it so
        pass

    def _send(self, status: int, body: bytes, content_type: str, *, length: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on purpose

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.seen.append(self.path)
        if self.path == "/wide.png":
            self._send(200, WIDE_PNG, "image/png")
        elif self.path == "/big.png":
            self._send(200, b"\0" * BIG, "image/png")
        elif self.path == "/big-unannounced.png":
            self.close_connection = True
            self._send(200, b"\0" * BIG, "image/png", length=False)
        elif self.path == "/page.png":
            self._send(200, b"<html>not an image</html>", "text/html; charset=utf-8")
        elif self.path == "/svg.svg":
            self._send(200, b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")
        elif self.path == "/garbage.png":
            self._send(200, b"definitely not a png", "image/png")
        elif self.path == "/missing.png":
            self._send(404, b"gone", "text/plain")
        elif self.path == "/slow.png":
            self.release.wait(30)  # held until the test has seen the client give up
            self._send(200, WIDE_PNG, "image/png")
        elif self.path.startswith("/redirect-private"):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path.startswith("/redirect-same"):
            self.send_response(302)
            self.send_header("Location", "/wide.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path.startswith("/redirect-loop"):
            self.send_response(302)
            self.send_header("Location", "/redirect-loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(404, b"", "text/plain")


class FileServer:
    """A plain HTTP server on loopback, in a thread."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.release = threading.Event()
        handler = type("Handler", (_Handler,), {"seen": self.seen, "release": self.release})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    @property
    def flora(self) -> str:
        """A loopback FLORA on this server's port: the one loopback port the fetch guard then allows."""
        return self.url("/api/v1")


@pytest.fixture
def files() -> Iterator[FileServer]:
    server = FileServer()
    with serve_in_thread(server.httpd):
        try:
            yield server
        finally:
            server.release.set()  # a handler still holding /slow.png ends too


def image(url: str, output_id: str = "output_image") -> OutputFile:
    return OutputFile(output_id=output_id, type="imageUrl", url=url)


def test_a_preview_is_at_most_512_pixels_and_keeps_the_aspect_ratio() -> None:
    data, mime = make_preview(WIDE_PNG)
    shrunk = Image.open(io.BytesIO(data))
    assert mime == "image/jpeg" and shrunk.format == "JPEG"
    assert shrunk.size == (PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE // 2)
    assert len(data) < len(WIDE_PNG)


def test_a_transparent_image_stays_png_and_a_small_one_is_not_enlarged() -> None:
    data, mime = make_preview(_png(100, 60, "RGBA"))
    shrunk = Image.open(io.BytesIO(data))
    assert mime == "image/png" and shrunk.mode == "RGBA" and shrunk.size == (100, 60)


def test_what_is_not_an_image_is_refused_at_decoding() -> None:
    with pytest.raises(ValueError, match="not a readable image"):
        make_preview(b"GIF89a but nothing after")


@pytest.mark.anyio
async def test_a_loopback_image_beside_a_loopback_flora_gets_a_preview(files: FileServer) -> None:
    previews = await make_previews([image(files.url("/wide.png"))], flora_base_url=files.flora)
    assert len(previews) == 1
    item = previews[0]
    assert item.type == "image" and item.mime_type == "image/jpeg"
    assert Image.open(io.BytesIO(base64.b64decode(item.data))).size == (512, 256)
    assert (item.meta or {}).get("output_id") == "output_image"


REFUSED = [
    ("/big.png", "cap"),
    ("/big-unannounced.png", "cap"),
    ("/page.png", "content type text/html refused"),
    ("/svg.svg", "content type image/svg+xml refused"),
    ("/missing.png", "HTTP 404"),
    ("/redirect-private", "169.254.169.254 is a link-local address"),
    ("/redirect-loop", "redirects"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("path", "why"), REFUSED, ids=[p for p, _ in REFUSED])
async def test_downloads_that_break_a_limit_are_refused(files: FileServer, path: str, why: str) -> None:
    with pytest.raises(FetchRefused, match=re.escape(why)):
        await fetch_output(files.url(path), flora_base_url=files.flora, max_bytes=10 * 1024 * 1024,
                           accept=is_image_type)


@pytest.mark.anyio
async def test_a_slow_download_is_cut_at_the_timeout(files: FileServer) -> None:
    # The server holds its answer until released: a refusal can only come from the 0.3 s timeout.
    with anyio.fail_after(20), pytest.raises(FetchRefused, match="within 0.3 s"):
        await fetch_output(files.url("/slow.png"), flora_base_url=files.flora, timeout=0.3)
    assert files.seen == ["/slow.png"] and not files.release.is_set()


@pytest.mark.anyio
async def test_a_redirect_on_the_same_host_is_followed(files: FileServer) -> None:
    fetched = await fetch_output(files.url("/redirect-same"), flora_base_url=files.flora)
    assert fetched.data == WIDE_PNG and fetched.content_type == "image/png"
    assert files.seen == ["/redirect-same", "/wide.png"]


@pytest.mark.anyio
async def test_loopback_http_is_not_fetched_when_flora_is_remote(files: FileServer) -> None:
    previews = await make_previews([image(files.url("/wide.png"))], flora_base_url=REAL_FLORA)
    assert previews == [] and files.seen == []


@pytest.mark.anyio
async def test_refused_outputs_are_skipped_and_the_rest_still_previewed(files: FileServer) -> None:
    outputs = [image(files.url(p), f"out_{i}") for i, p in enumerate(
        ["/big.png", "/page.png", "/redirect-private", "/garbage.png", "/wide.png"])]
    previews = await make_previews(outputs, flora_base_url=files.flora, limit=10)
    assert [(p.meta or {}).get("output_id") for p in previews] == ["out_4"]
    assert sorted(files.seen) == ["/big.png", "/garbage.png", "/page.png", "/redirect-private", "/wide.png"]


@pytest.mark.anyio
async def test_video_audio_and_text_outputs_are_never_downloaded(files: FileServer) -> None:
    outputs = [OutputFile(output_id=k, type=k, url=files.url(f"/wide.png?{k}"))
               for k in ("videoUrl", "audioUrl", "video_url", "audio_url", "text", "documentUrl")]
    assert await make_previews(outputs, flora_base_url=files.flora) == []
    assert files.seen == []


@pytest.mark.anyio
async def test_at_most_the_limit_of_previews_is_made(files: FileServer) -> None:
    outputs = [image(files.url(f"/redirect-same?{i}"), f"out_{i}") for i in range(6)]
    previews = await make_previews(outputs, flora_base_url=files.flora, limit=2)
    assert [(p.meta or {}).get("output_id") for p in previews] == ["out_0", "out_1"]


@pytest.mark.anyio
async def test_a_real_sandbox_image_arrives_as_a_small_preview_next_to_its_url(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, preview=True)) as kit, mcp_client(kit) as client:
        result = await client.call_tool("cctv-cam", {"input_image": sandbox.sample_url("street.png")})
    assert result.is_error is False
    text, link, *rest = result.content
    url = (result.structured_content or {})["outputs"][0]["url"]
    assert isinstance(text, types.TextContent) and url in text.text
    assert isinstance(link, types.ResourceLink) and link.uri == url
    assert len(rest) == 1 and isinstance(rest[0], types.ImageContent)
    # The output is for the person and the model; its preview for the person only, and below the output.
    assert link.annotations == types.Annotations(audience=["user", "assistant"], priority=1.0)
    assert rest[0].annotations == types.Annotations(audience=["user"], priority=0.5)
    preview = Image.open(io.BytesIO(base64.b64decode(rest[0].data)))
    full = sandbox.requests_for("files")
    assert [r.path for r in full][-1].endswith(url.rsplit("/", 1)[-1])
    assert max(preview.size) <= PREVIEW_MAX_SIDE
    assert preview.size[0] * 3 == pytest.approx(preview.size[1] * 4, abs=8)  # the technique's 4:3 still


@pytest.mark.anyio
async def test_previews_are_on_by_default_off_when_asked_and_never_for_audio(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox)) as kit, mcp_client(kit) as client:
        shown = await client.call_tool("qr-code-generator", {"content": "a preview"})
    assert [c.type for c in shown.content] == ["text", "resource_link", "image"]
    fetched = len(sandbox.requests_for("files"))
    async with Toolkit(settings_for(sandbox, preview=False)) as kit, mcp_client(kit) as client:  # FLORA_PREVIEW=off
        plain = await client.call_tool("qr-code-generator", {"content": "no preview"})
    assert [c.type for c in plain.content] == ["text", "resource_link"]
    async with Toolkit(settings_for(sandbox, preview=True)) as kit, mcp_client(kit) as client:
        tone = await client.call_tool("tone-generator", {"frequency": "440"})
    assert tone.is_error is False and [c.type for c in tone.content] == ["text", "resource_link"]
    assert len(sandbox.requests_for("files")) == fetched == 1
