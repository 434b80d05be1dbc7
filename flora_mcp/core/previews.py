"""Small previews of image outputs, and the one guarded way flora-mcp downloads an output file.

Every download goes through `fetch_output`: https only (plain http only to a loopback host, and only when FLORA itself
is on loopback, as the sandbox is), no redirect to another host, a timeout, a content-type check and a byte cap
enforced while streaming. Previews (`make_previews`, used when FLORA_PREVIEW is on) then decode the image with
Pillow, shrink it to at most `PREVIEW_MAX_SIDE` pixels on its long side and re-encode it; the full-size file never
reaches the client, and video or audio outputs are never fetched.
"""

from __future__ import annotations

import base64
import io
import logging
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import anyio
import httpx
from PIL import Image

from flora_mcp._net import is_loopback_host
from flora_mcp._version import __version__
from flora_mcp.core.results import OutputFile

if TYPE_CHECKING:
    # Importing mcp.types takes about a second: the CLI's downloads must not pay for it.
    import mcp.types as types

__all__ = [
    "FETCH_TIMEOUT",
    "IMAGE_OUTPUT_TYPES",
    "MAX_PREVIEWS",
    "PREVIEW_MAX_BYTES",
    "PREVIEW_MAX_SIDE",
    "FetchRefused",
    "Fetched",
    "fetch_output",
    "is_image_type",
    "make_preview",
    "make_previews",
    "open_output",
    "refusal_reason",
]

log = logging.getLogger("flora_mcp.core.previews")

PREVIEW_MAX_SIDE = 512
PREVIEW_MAX_BYTES = 10 * 1024 * 1024
"""The largest source image fetched for a preview."""
FETCH_TIMEOUT = 15.0
"""Seconds for one whole download (connect, headers and body)."""
MAX_PREVIEWS = 4
"""Previews per result: a multiple-value call can make many images, and each one costs the model context."""
MAX_REDIRECTS = 3
MAX_SOURCE_PIXELS = 40_000_000
"""Images larger than this are not decoded (decompression bombs)."""
JPEG_QUALITY = 80
IMAGE_OUTPUT_TYPES = frozenset({"imageUrl", "image_url", "image"})
_CHUNK = 64 * 1024


class FetchRefused(Exception):
    """An output URL was not downloaded: the policy refused it, or the answer broke a limit."""


@dataclass(frozen=True)
class Fetched:
    """A downloaded output: its bytes and what the server said they are."""

    url: str
    content_type: str
    data: bytes



def refusal_reason(url: str, *, flora_base_url: str) -> str | None:
    """Why flora-mcp will not download this URL, or None when it may.

    https is allowed to any host; http only to a loopback host, and only when FLORA's own base URL is on loopback
    (the sandbox), so a real deployment never fetches plain http nor reaches into the machine's loopback services.
    """
    parts = urlsplit(url)
    if not parts.hostname:
        return "not an absolute URL"
    if parts.scheme == "https":
        return None
    flora_is_local = is_loopback_host(urlsplit(flora_base_url).hostname)
    if parts.scheme == "http" and is_loopback_host(parts.hostname) and flora_is_local:
        return None
    return f"only https URLs are downloaded, not {parts.scheme or 'a relative'} URL of {parts.hostname}"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


@asynccontextmanager
async def open_output(
    url: str,
    *,
    flora_base_url: str,
    accept: Callable[[str], bool] | None = None,
    timeout: float = FETCH_TIMEOUT,
    client: httpx.AsyncClient | None = None,
) -> AsyncIterator[httpx.Response]:
    """A streaming GET of an output URL under the download policy; the caller reads the body and caps its size.

    Redirects are followed only within the same scheme, host and port (at most `MAX_REDIRECTS`).

    Args:
        url: the output URL.
        flora_base_url: FLORA's API base URL, which decides whether loopback http is allowed.
        accept: called with the response's media type (`image/png`); False refuses the download.
        timeout: seconds for connecting and each read.
        client: an httpx client to use; by default one is made for this download.

    Raises:
        FetchRefused: the URL, a redirect, the status or the content type was refused.
    """
    reason = refusal_reason(url, flora_base_url=flora_base_url)
    if reason:
        raise FetchRefused(reason)
    own = client is None
    http = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=False,
                                       headers={"User-Agent": f"flora-mcp/{__version__}"})
    try:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            async with http.stream("GET", current, follow_redirects=False) as response:
                if response.is_redirect:
                    target = urljoin(current, response.headers.get("location", ""))
                    if _origin(target) != _origin(current):
                        raise FetchRefused(f"redirect to another host refused: {urlsplit(target).hostname}")
                    current = target
                    continue
                if response.status_code != 200:
                    raise FetchRefused(f"HTTP {response.status_code}")
                media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if accept is not None and not accept(media_type):
                    raise FetchRefused(f"content type {media_type or 'missing'} refused")
                yield response
                return
        raise FetchRefused(f"more than {MAX_REDIRECTS} redirects")
    except httpx.HTTPError as exc:
        raise FetchRefused(f"download failed: {type(exc).__name__}") from exc
    finally:
        if own:
            with anyio.CancelScope(shield=True):
                await http.aclose()


async def fetch_output(
    url: str,
    *,
    flora_base_url: str,
    max_bytes: int = PREVIEW_MAX_BYTES,
    accept: Callable[[str], bool] | None = None,
    timeout: float = FETCH_TIMEOUT,
    client: httpx.AsyncClient | None = None,
) -> Fetched:
    """Download an output URL into memory under the download policy, at most `max_bytes`, within `timeout`.

    Raises:
        FetchRefused: refused by policy, too large, too slow, or failed.
    """
    with anyio.move_on_after(timeout):
        async with open_output(url, flora_base_url=flora_base_url, accept=accept, timeout=timeout,
                               client=client) as response:
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchRefused(f"{int(declared)} bytes is more than the {max_bytes}-byte cap")
            body = bytearray()
            async for chunk in response.aiter_bytes(_CHUNK):
                body.extend(chunk)
                if len(body) > max_bytes:
                    raise FetchRefused(f"more than the {max_bytes}-byte cap")
            media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            return Fetched(url=url, content_type=media_type, data=bytes(body))
    raise FetchRefused(f"no complete answer within {timeout:g} s")


def is_image_type(media_type: str) -> bool:
    """Raster images only: SVG is code, not a picture to decode."""
    return media_type.startswith("image/") and media_type != "image/svg+xml"


def make_preview(data: bytes, *, max_side: int = PREVIEW_MAX_SIDE) -> tuple[bytes, str]:
    """Decode an image and re-encode it at most `max_side` pixels on its long side.

    Returns:
        The encoded bytes and their MIME type: PNG when the image has transparency, else JPEG.

    Raises:
        ValueError: the data is not an image Pillow can read, or it is too large to decode safely.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as source:
                width, height = source.size
                if width * height > MAX_SOURCE_PIXELS:
                    raise ValueError(f"{width}x{height} pixels is too large to decode")
                source.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale straight away
                image = source.copy()
    except (OSError, EOFError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(f"not a readable image: {exc}") from exc
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    transparent = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    out = io.BytesIO()
    if transparent:
        image.convert("RGBA").save(out, format="PNG", optimize=True)
        return out.getvalue(), "image/png"
    image.convert("RGB").save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue(), "image/jpeg"


async def _preview_of(output: OutputFile, *, flora_base_url: str, client: httpx.AsyncClient,
                      max_bytes: int, timeout: float) -> types.ImageContent | None:
    try:
        fetched = await fetch_output(output.url, flora_base_url=flora_base_url, max_bytes=max_bytes,
                                     accept=is_image_type, timeout=timeout, client=client)
        data, mime_type = await anyio.to_thread.run_sync(make_preview, fetched.data)
    except (FetchRefused, ValueError) as exc:
        log.warning("no preview of output %s: %s", output.output_id, exc)
        return None
    import mcp.types as types

    return types.ImageContent(type="image", data=base64.b64encode(data).decode("ascii"), mime_type=mime_type,
                              _meta={"output_id": output.output_id, "preview": True})


async def make_previews(
    outputs: Sequence[OutputFile],
    *,
    flora_base_url: str,
    max_bytes: int = PREVIEW_MAX_BYTES,
    timeout: float = FETCH_TIMEOUT,
    limit: int = MAX_PREVIEWS,
) -> list[types.ImageContent]:
    """Small previews of the image outputs among `outputs`, in their order; failures are logged and skipped.

    Args:
        outputs: a result's outputs; only image types are considered, and at most `limit` of them.
        flora_base_url: FLORA's API base URL (loopback http is allowed only when it is on loopback).
        max_bytes: the largest source file downloaded.
        timeout: seconds for each download.
        limit: at most this many previews.

    Returns:
        One MCP image content item per preview made.
    """
    images = [o for o in outputs if o.type in IMAGE_OUTPUT_TYPES][:limit]
    if not images:
        return []
    found: list[types.ImageContent | None] = [None] * len(images)
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=False,
                                 headers={"User-Agent": f"flora-mcp/{__version__}"}) as client:

        async def one(index: int, output: OutputFile) -> None:
            found[index] = await _preview_of(output, flora_base_url=flora_base_url, client=client,
                                             max_bytes=max_bytes, timeout=timeout)

        async with anyio.create_task_group() as tg:
            for index, output in enumerate(images):
                tg.start_soon(one, index, output)
    return [item for item in found if item is not None]
