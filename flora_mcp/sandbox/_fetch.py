"""Fetching URL inputs, only from loopback hosts and `data:` URLs, with size and time limits.

The sandbox must never become a way to make requests to arbitrary hosts: `check_url` rejects other hosts when a run
is created, and `fetch` re-checks every redirect. URLs under the sandbox's own `/files/` are read from disk.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

import anyio
import httpx

from flora_mcp._net import is_loopback_host

__all__ = ["FetchError", "Fetcher", "check_url", "is_loopback_host", "ssl_context"]

MAX_REDIRECTS = 3


class FetchError(Exception):
    """An input URL could not be fetched; the run fails with `input_fetch_error`."""



def check_url(value: str) -> str | None:
    """Why the sandbox will not fetch this URL, or None when it will."""
    if value.startswith("data:"):
        return None if "," in value else "Malformed data: URL"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        return "Must be a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Must be an http(s) or data: URL"
    if not is_loopback_host(parts.hostname):
        return "The sandbox only fetches loopback (127.0.0.1, ::1, localhost) and data: URLs"
    return None


@cache
def ssl_context() -> ssl.SSLContext:
    """The default TLS context, made once per process."""
    # Loading the CA bundle costs ~60 ms; do it once per process, not once per fetch.
    return ssl.create_default_context()


def _decode_data_url(url: str, max_bytes: int) -> bytes:
    header, _, payload = url[len("data:") :].partition(",")
    try:
        data = base64.b64decode(payload, validate=True) if header.endswith(";base64") else unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise FetchError("Malformed data: URL") from exc
    if len(data) > max_bytes:
        raise FetchError(f"data: URL is larger than {max_bytes} bytes")
    return data


@dataclass(frozen=True)
class Fetcher:
    """Fetches input URLs for one run, knowing where the sandbox's own files live."""

    own_origin: str
    files_dir: Path
    max_bytes: int
    timeout: float
    transport: httpx.AsyncBaseTransport | None = None
    """Tests may swap the network out; None uses real loopback HTTP."""

    async def fetch(self, url: str) -> bytes:
        """The bytes at `url`; raises `FetchError` for anything refused, missing, too big or too slow."""
        if url.startswith("data:"):
            return _decode_data_url(url, self.max_bytes)
        problem = check_url(url)
        if problem:
            raise FetchError(problem)
        local = self._local_path(url)
        if local is not None:
            return await self._read_local(local)
        try:
            with anyio.fail_after(self.timeout):
                return await self._fetch_http(url)
        except TimeoutError as exc:
            raise FetchError(f"Fetching {url} took longer than {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise FetchError(f"Fetching {url} failed: {exc!r}") from exc

    def _local_path(self, url: str) -> Path | None:
        prefix = self.own_origin.rstrip("/") + "/files/"
        if not url.startswith(prefix):
            return None
        root = self.files_dir.resolve()
        path = (root / urlsplit(url).path.split("/files/", 1)[1]).resolve()
        if not path.is_relative_to(root):
            raise FetchError("Path escapes the sandbox's files")
        return path

    async def _read_local(self, path: Path) -> bytes:
        if not path.is_file():
            raise FetchError(f"No such sandbox file: {path.name}")
        if path.stat().st_size > self.max_bytes:
            raise FetchError(f"File is larger than {self.max_bytes} bytes")
        return await anyio.Path(path).read_bytes()

    async def _fetch_http(self, url: str) -> bytes:
        async with httpx.AsyncClient(
            transport=self.transport,
            verify=ssl_context(),
            follow_redirects=False,
            trust_env=False,
            timeout=self.timeout,
        ) as client:
            for _ in range(MAX_REDIRECTS + 1):
                async with client.stream("GET", url) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        problem = check_url(url)
                        if problem or url.startswith("data:"):
                            raise FetchError(f"Refused redirect to {url}: {problem or 'not http(s)'}")
                        continue
                    if response.status_code >= 400:
                        raise FetchError(f"GET {url} answered HTTP {response.status_code}")
                    return await self._read_limited(response)
        raise FetchError(f"Too many redirects fetching {url}")

    async def _read_limited(self, response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise FetchError(f"{response.url} is larger than {self.max_bytes} bytes")
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise FetchError(f"Reading {response.url} failed: {exc}") from exc
        return b"".join(chunks)
