"""The first catalog load in a child process, forked at start-up, while this process imports the MCP SDK.

Start-up is CPU-bound under one interpreter lock: the SDK's import (about a second) and the first catalog load
(hundreds of requests and answers: 200-300 ms of CPU at 1,000 techniques, and the HTTP client's TLS context) took
turns on one core. A child forked before either begins loads the catalog on another core, exactly as this process
would (`techniques_for`, the same settings), and sends the techniques over a pipe; this process builds its catalog
from them as it would from FLORA's answers.

Only where it is safe and of use: on Linux (a fork without exec), while no other thread runs, when no cached catalog
will be served. Whatever the child cannot do is left to this process's own load, as if there were no child; only
FLORA's refusal or failure is not asked again: the child sends the line this process would have printed.

The pipe carries length-prefixed pickled frames: the listed items, then the techniques or that line. Pickle between
a process and its own fork trusts nothing the process does not already.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import struct
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread

from flora_mcp.api.errors import FloraError
from flora_mcp.api.models import Technique
from flora_mcp.config import Settings

__all__ = ["CatalogProcess", "start_catalog_process"]

log = logging.getLogger("flora_mcp.core.catalog_process")

_HEADER = struct.Struct("!Q")
_LISTED, _LOADED, _FAILED = "listed", "loaded", "failed"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
Frame = tuple[str, Any]


class CatalogProcess:
    """The child loading the catalog: its techniques, once, then it is gone."""

    def __init__(self, pid: int, read_fd: int) -> None:
        self.pid: int | None = pid
        self._fd: int | None = read_fd
        self._reading = False

    async def techniques(self, on_listed: Callable[[list[Technique]], Awaitable[None]] | None = None
                         ) -> list[Technique] | None:
        """The child's techniques, `on_listed` awaited with its list items first; None when the child could not
        load them (this process loads them itself then).

        Raises:
            StartupError: FLORA refused or failed the child's load: the one line that says so.
        """
        pid = self.pid
        try:
            frame = await self._next()
            if frame is not None and frame[0] == _LISTED:
                if on_listed is not None:
                    await on_listed(frame[1])
                frame = await self._next()
        finally:
            self.close()
        if frame is not None and frame[0] == _LOADED:
            techniques: list[Technique] = frame[1]
            log.info("%d techniques loaded by the catalog process (pid %s)", len(techniques), pid)
            return techniques
        if frame is not None and frame[0] == _FAILED:
            from flora_mcp.core.startup import StartupError

            raise StartupError(frame[1])
        log.info("the catalog process sent no catalog; loading it here")
        return None

    def close(self) -> None:
        """End the child if it still runs, and reap it."""
        if self._fd is not None and not self._reading:
            os.close(self._fd)
            self._fd = None
        if self.pid is None:
            return
        try:
            if os.waitpid(self.pid, os.WNOHANG)[0] == 0:
                os.kill(self.pid, signal.SIGKILL)  # the pipe's end closes with it: a reader still waiting sees EOF
                os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self.pid = None

    async def _next(self) -> Frame | None:
        if self._fd is None:
            return None
        self._reading = True
        return await anyio.to_thread.run_sync(self._read_frame, abandon_on_cancel=True)

    def _read_frame(self) -> Frame | None:
        """One frame; None at the end of the pipe or on anything unreadable (the fd is then closed here)."""
        fd = self._fd
        assert fd is not None
        frame: Frame | None = None
        try:
            header = _read_exactly(fd, _HEADER.size)
            body = _read_exactly(fd, _HEADER.unpack(header)[0]) if header is not None else None
            frame = pickle.loads(body) if body is not None else None
        except Exception:
            log.debug("unreadable frame from the catalog process", exc_info=True)
        finally:
            self._reading = False
            if frame is None:
                os.close(fd)
                self._fd = None
        return frame


def start_catalog_process(settings: Settings) -> CatalogProcess | None:
    """Fork the child that loads the catalog, where that is safe and of use (see the module's docstring)."""
    if sys.platform != "linux" or threading.active_count() != 1:
        return None
    key = settings.api_key_value()
    if not key:
        return None
    from flora_mcp.core.loading import catalog_cache_for

    cache = catalog_cache_for(settings, key)
    if cache is not None and cache.path.exists():
        return None  # served from the cache at once, and refreshed later
    parent = os.getpid()
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError as exc:
        log.debug("cannot fork the catalog process: %s", exc)
        os.close(read_fd)
        os.close(write_fd)
        return None
    if pid == 0:  # the child: it never returns
        code = 1
        try:
            os.close(read_fd)
            _child(settings, parent, write_fd)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return CatalogProcess(pid, read_fd)


def _child(settings: Settings, parent: int, write_fd: int) -> None:
    # stdout is the parent's MCP stream: nothing of the child's may reach it, and the client sees it end when the
    # parent ends.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    _end_with(parent)

    from flora_mcp.core.loading import flora_client, techniques_for
    from flora_mcp.core.startup import catalog_failure

    def send(kind: str, value: Any) -> None:
        body = pickle.dumps((kind, value), protocol=pickle.HIGHEST_PROTOCOL)
        _write_all(write_fd, _HEADER.pack(len(body)) + body)

    async def load() -> None:
        async def listed(items: list[Technique]) -> None:
            await anyio.to_thread.run_sync(send, _LISTED, items)

        async with flora_client(settings) as client:
            try:
                techniques = await techniques_for(client, settings, listed, prefetch=True)
            except FloraError as exc:
                send(_FAILED, str(catalog_failure(settings, exc)))
                return
        send(_LOADED, techniques)

    anyio.run(load)


def _end_with(parent: int) -> None:
    """Have the kernel end this child when its parent ends (a killed server leaves no load behind).

    The signal follows the thread that forked: the main thread, which runs the server to its end.
    """
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        log.debug("prctl(PR_SET_PDEATHSIG) is not available")
    if os.getppid() != parent:  # it ended before that took effect
        os._exit(1)


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
