"""Upload bodies: a file (a path, a stream or bytes) read in chunks, as a multipart form or raw, with progress.

A body is made afresh for every attempt of a request (`Body.chunks()` starts again at the first byte), so a retry
sends the whole file again without ever holding it in memory: a path or a seekable stream is read `CHUNK` bytes at a
time, off the event loop. A stream that cannot seek is first spooled to a temporary file. Progress counts file bytes
sent and never goes back when a retry starts over.
"""

from __future__ import annotations

import inspect
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import anyio
import anyio.to_thread

from flora_mcp._media import DIRECT_UPLOAD_MAX_BYTES, SNIFF_BYTES

__all__ = ["CHUNK", "Body", "FileSource", "ProgressCallback", "UploadInput", "multipart_body", "open_source",
           "raw_body"]

CHUNK = 1024 * 1024
"""Bytes read from the file and handed to the connection at a time (1 MiB: ~20% faster than 256 KiB in
bench/uploads.py, and still only a few MiB in flight)."""
PROGRESS_STEPS = 100
"""At most this many progress reports per upload (every 1%), however many chunks it has."""

ProgressCallback = Callable[[int, int], Awaitable[None] | None]
"""`(bytes_sent, total_bytes)`, sync or async; called as an upload goes, never with a smaller `bytes_sent`."""
UploadInput = str | os.PathLike[str] | bytes | IO[bytes]


@dataclass
class FileSource:
    """A file to upload: its size, its first bytes (for sniffing), its name, and how to read it from the start."""

    size: int
    head: bytes
    name: str | None
    _path: Path | None = None
    _stream: IO[bytes] | None = None
    _start: int = 0
    _data: bytes | None = None
    _spooled: bool = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes from the first, `CHUNK` at a time; an error if it is no longer `size` bytes long."""
        sent = 0
        if self._data is not None:
            view = memoryview(self._data)
            for offset in range(0, self.size, CHUNK):
                yield bytes(view[offset : offset + CHUNK])
            return
        if self._path is not None:
            async with await anyio.open_file(self._path, "rb") as file:
                while sent < self.size and (chunk := await file.read(min(CHUNK, self.size - sent))):
                    sent += len(chunk)
                    yield chunk
        else:
            stream = self._stream
            assert stream is not None
            await anyio.to_thread.run_sync(stream.seek, self._start)
            while sent < self.size and (chunk := await anyio.to_thread.run_sync(stream.read, min(CHUNK,
                                                                                                 self.size - sent))):
                sent += len(chunk)
                yield chunk
        if sent != self.size:
            raise OSError(f"the file changed while it was being uploaded ({sent} of {self.size} bytes)")

    def close(self) -> None:
        if self._spooled and self._stream is not None:
            self._stream.close()


def _open_path(path: Path) -> FileSource:
    with path.open("rb") as file:
        head = file.read(SNIFF_BYTES)
        size = os.fstat(file.fileno()).st_size
    return FileSource(size=size, head=head, name=path.name, _path=path)


def _open_stream(stream: IO[bytes]) -> FileSource:
    spooled = False
    if not stream.seekable():
        spool = tempfile.SpooledTemporaryFile(max_size=DIRECT_UPLOAD_MAX_BYTES)  # noqa: SIM115 -- closed by close()
        while chunk := stream.read(CHUNK):
            spool.write(chunk)
        stream, spooled = spool, True
        stream.seek(0)
    start = stream.tell()
    size = stream.seek(0, os.SEEK_END) - start
    stream.seek(start)
    head = stream.read(SNIFF_BYTES)
    stream.seek(start)
    name = getattr(stream, "name", None) if not spooled else None
    return FileSource(size=size, head=head, name=Path(name).name if isinstance(name, str) else None,
                      _stream=stream, _start=start, _spooled=spooled)


async def open_source(source: UploadInput) -> FileSource:
    """Look at a file to upload without reading it: its size, first bytes and name.

    Raises:
        OSError: the file cannot be read.
    """
    if isinstance(source, bytes):
        return FileSource(size=len(source), head=source[:SNIFF_BYTES], name=None, _data=source)
    if isinstance(source, str | os.PathLike):
        return await anyio.to_thread.run_sync(_open_path, Path(os.fspath(source)).expanduser())
    return await anyio.to_thread.run_sync(_open_stream, source)


class _Progress:
    """Reports bytes sent to a callback, throttled to `PROGRESS_STEPS` reports, never going backwards."""

    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self.callback = callback
        self.total = total
        self.step = max(total // PROGRESS_STEPS, 1)
        self.reported = -1

    async def advance(self, sent: int) -> None:
        if self.callback is None or sent <= self.reported:
            return
        if sent < self.total and sent - max(self.reported, 0) < self.step:
            return
        self.reported = sent
        result = self.callback(sent, self.total)
        if inspect.isawaitable(result):
            await result


@dataclass(frozen=True)
class Body:
    """A request body that can be sent again: its headers, and a fresh stream of its bytes for each attempt."""

    headers: dict[str, str]
    source: FileSource
    prefix: bytes
    suffix: bytes
    progress: _Progress

    def chunks(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        if self.prefix:
            yield self.prefix
        sent = 0
        async for chunk in self.source.chunks():
            yield chunk
            sent += len(chunk)
            await self.progress.advance(sent)
        if self.suffix:
            yield self.suffix


def _quoted(value: str) -> str:
    # The escapes of the HTML form-data encoding, which multipart parsers undo.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def multipart_body(fields: list[tuple[str, str]], *, file_field: str, file_name: str, content_type: str,
                   source: FileSource, progress: ProgressCallback | None = None) -> Body:
    """A `multipart/form-data` body: every field in order, then the file part (as presigned POSTs require)."""
    boundary = "flora-mcp-" + secrets.token_hex(16)
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n'.encode()
             + value.encode() + b"\r\n" for name, value in fields]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(file_field)}"; '
                 f'filename="{_quoted(file_name)}"\r\nContent-Type: {content_type}\r\n\r\n'.encode())
    prefix, suffix = b"".join(parts), f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}",
               "Content-Length": str(len(prefix) + source.size + len(suffix))}
    return Body(headers, source, prefix, suffix, _Progress(progress, source.size))


def raw_body(*, content_type: str, source: FileSource, progress: ProgressCallback | None = None) -> Body:
    """The file's bytes as the whole body (a presigned PUT)."""
    headers = {"Content-Type": content_type, "Content-Length": str(source.size)}
    return Body(headers, source, b"", b"", _Progress(progress, source.size))
