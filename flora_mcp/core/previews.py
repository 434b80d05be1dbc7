"""Small previews of image outputs, and downloads of output files through the guard of `flora_mcp._fetch_guard`.

Every download goes through `open_output` (and `fetch_output`, which reads it into memory): each hop checked and
pinned by the guard (public https addresses only; loopback, over http too, only at FLORA's own port when FLORA is on
loopback, as the sandbox is), every redirect re-checked, a timeout, a content-type check and a byte cap enforced while
streaming. Previews (`make_previews`, used when FLORA_PREVIEW is on) then decode the image with Pillow, among
`PREVIEW_FORMATS` only (EPS and other formats that run external programs are refused), shrink it to at most
`PREVIEW_MAX_SIDE` pixels on its long side and re-encode it; the full-size file never reaches the client, and video
or audio outputs are never fetched.
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

import anyio
import httpx

from flora_mcp._fetch_guard import FetchPolicy, FetchRefused, guarded_client, guarded_stream
from flora_mcp.core.results import OutputFile

if TYPE_CHECKING:
    # Importing mcp.types takes about a second: the CLI's downloads must not pay for it.
    import mcp.types as types

__all__ = [
    "FETCH_TIMEOUT",
    "IMAGE_OUTPUT_TYPES",
    "MAX_PREVIEWS",
    "PREVIEW_FORMATS",
    "PREVIEW_MAX_BYTES",
    "PREVIEW_MAX_SIDE",
    "FetchRefused",
    "Fetched",
    "fetch_output",
    "is_image_type",
    "make_preview",
    "make_previews",
    "open_output",
]

log = logging.getLogger("flora_mcp.core.previews")

PREVIEW_MAX_SIDE = 512
PREVIEW_MAX_BYTES = 10 * 1024 * 1024
"""The largest source image fetched for a preview."""
FETCH_TIMEOUT = 15.0
"""Seconds for one whole download (connect, headers and body)."""
MAX_PREVIEWS = 4
"""Previews per result: a multiple-value call can make many images, and each one costs the model context."""
MAX_SOURCE_PIXELS = 40_000_000
"""Images larger than this are not decoded (decompression bombs)."""
JPEG_QUALITY = 80
PREVIEW_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
"""The only formats a preview decodes: Pillow would hand EPS to Ghostscript, and others need external programs."""
IMAGE_OUTPUT_TYPES = frozenset({"imageUrl", "image_url", "image"})
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Fetched:
    """A downloaded output: its bytes and what the server said they are."""

    url: str
    content_type: str
    data: bytes


@asynccontextmanager
async def open_output(
    url: str,
    *,
    flora_base_url: str,
    accept: Callable[[str], bool] | None = None,
    timeout: float = FETCH_TIMEOUT,
    client: httpx.AsyncClient | None = None,
    policy: FetchPolicy | None = None,
) -> AsyncIterator[httpx.Response]:
    """A streaming GET of an output URL through the fetch guard; the caller reads the body and caps its size.

    Args:
        url: the output URL.
        flora_base_url: FLORA's API base URL, which decides whether FLORA's own loopback port may be reached.
        accept: called with the response's media type (`image/png`); False refuses the download.
        timeout: seconds for connecting and each read.
        client: a client from `guarded_client` to use; by default one is made for this download.
        policy: where downloads may connect; by default `FetchPolicy.for_flora(flora_base_url)`.

    Raises:
        FetchRefused: the URL, a redirect, the status or the content type was refused, or the download failed.
    """
    policy = policy or FetchPolicy.for_flora(flora_base_url)
    own = client is None
    http = client or guarded_client(timeout=timeout)
    try:
        async with guarded_stream(http, "GET", url, policy=policy) as response:
            if response.status_code != 200:
                raise FetchRefused(f"HTTP {response.status_code}")
            media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if accept is not None and not accept(media_type):
                raise FetchRefused(f"content type {media_type or 'missing'} refused")
            yield response
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
    policy: FetchPolicy | None = None,
) -> Fetched:
    """Download an output URL into memory through the fetch guard, at most `max_bytes`, within `timeout`.

    Raises:
        FetchRefused: refused by policy, too large, too slow, or failed.
    """
    with anyio.move_on_after(timeout):
        async with open_output(url, flora_base_url=flora_base_url, accept=accept, timeout=timeout,
                               client=client, policy=policy) as response:
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
        ValueError: the data is not an image of `PREVIEW_FORMATS`, or it is too large to decode safely.
    """
    # Imported on first use: Pillow takes ~20 ms to import, and a server starting up needs none of it.
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=PREVIEW_FORMATS) as source:
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


async def _preview_of(output: OutputFile, *, flora_base_url: str, client: httpx.AsyncClient, policy: FetchPolicy,
                      max_bytes: int, timeout: float) -> types.ImageContent | None:
    try:
        fetched = await fetch_output(output.url, flora_base_url=flora_base_url, max_bytes=max_bytes,
                                     accept=is_image_type, timeout=timeout, client=client, policy=policy)
        data, mime_type = await anyio.to_thread.run_sync(make_preview, fetched.data)
    except (FetchRefused, ValueError) as exc:
        log.warning("no preview of output %s: %s", output.output_id, exc)
        return None
    import mcp.types as types

    # For the person, not the model: a client that honours `audience` shows it without spending the model's context.
    return types.ImageContent(type="image", data=base64.b64encode(data).decode("ascii"), mime_type=mime_type,
                              annotations=types.Annotations(audience=["user"], priority=0.5),
                              _meta={"output_id": output.output_id, "preview": True})


async def make_previews(
    outputs: Sequence[OutputFile],
    *,
    flora_base_url: str,
    max_bytes: int = PREVIEW_MAX_BYTES,
    timeout: float = FETCH_TIMEOUT,
    limit: int = MAX_PREVIEWS,
    policy: FetchPolicy | None = None,
) -> list[types.ImageContent]:
    """Small previews of the image outputs among `outputs`, in their order; failures are logged and skipped.

    Args:
        outputs: a result's outputs; only image types are considered, and at most `limit` of them.
        flora_base_url: FLORA's API base URL (its own loopback port is reachable only when it is on loopback).
        max_bytes: the largest source file downloaded.
        timeout: seconds for each download.
        limit: at most this many previews.
        policy: where downloads may connect; by default `FetchPolicy.for_flora(flora_base_url)`.

    Returns:
        One MCP image content item per preview made.
    """
    images = [o for o in outputs if o.type in IMAGE_OUTPUT_TYPES][:limit]
    if not images:
        return []
    found: list[types.ImageContent | None] = [None] * len(images)
    policy = policy or FetchPolicy.for_flora(flora_base_url)
    async with guarded_client(timeout=timeout) as client:

        async def one(index: int, output: OutputFile) -> None:
            found[index] = await _preview_of(output, flora_base_url=flora_base_url, client=client, policy=policy,
                                             max_bytes=max_bytes, timeout=timeout)

        async with anyio.create_task_group() as tg:
            for index, output in enumerate(images):
                tg.start_soon(one, index, output)
    return [item for item in found if item is not None]
