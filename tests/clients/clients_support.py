"""Running the real MCP clients from npm (installed under clients/) as subprocesses, and the servers they talk to."""

from __future__ import annotations

import json
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from tests.support import server_env

REPO = Path(__file__).resolve().parents[2]
CLIENTS = REPO / "clients"
NODE_BIN = CLIENTS / "node_modules" / ".bin"
SDK_CLIENT = CLIENTS / "sdk_client.mjs"
INSTALL = CLIENTS / "install.sh"

# Not the suite's TEST_KEY: these keys travel on command lines, which a failing assertion may print.
SANDBOX_KEY = "sk_sandbox_clients"

CLIENT_TIMEOUT = 60.0
"""Longest seconds one client run may take before the test fails."""
POLL_INTERVAL = "0.1"
"""FLORA_POLL_INTERVAL of the servers we start: runs are seen finished soon after they finish."""
SERVER_START_TIMEOUT = 30.0
SERVER_STOP_TIMEOUT = 10.0


def flora_mcp_command() -> list[str]:
    """The flora-mcp console script of the Python running the tests: what a user's client config names."""
    script = Path(sys.executable).parent / "flora-mcp"
    if script.exists():
        return [str(script)]
    found = shutil.which("flora-mcp")
    return [found] if found else [sys.executable, "-m", "flora_mcp"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(text: str, chars: int = 4000) -> str:
    return text if len(text) <= chars else "..." + text[-chars:]


@dataclass(frozen=True)
class NodeTools:
    """The installed clients, run with the Node 22 under clients/ first on PATH and a throwaway HOME."""

    env: dict[str, str]

    def run(self, args: Sequence[str], *, timeout: float = CLIENT_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run one client to completion; a client that hangs fails the test instead of the suite."""
        return subprocess.run(list(args), env=self.env, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)

    def inspector(self, *args: str, timeout: float = CLIENT_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """`mcp-inspector --cli --format json -q ARGS`: one JSON object on stdout, or an error envelope on stderr."""
        return self.run([str(NODE_BIN / "mcp-inspector"), "--cli", "--format", "json", "-q", *args], timeout=timeout)

    def sdk_client(self, *args: str, timeout: float = CLIENT_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """clients/sdk_client.mjs: the TypeScript SDK's Client; prints one JSON report."""
        return self.run([str(NODE_BIN / "node"), str(SDK_CLIENT), *args], timeout=timeout)

    def conformance(self, url: str, scenario: str, out_dir: Path, spec_version: str, *extra: str,
                    ) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
        """Run one server scenario of the conformance suite at a protocol revision (its wire: the 2025 handshake or
        2026's per-request `_meta`); its checks as the suite saved them."""
        proc = self.run([str(NODE_BIN / "conformance"), "server", "--url", url, "--scenario", scenario,
                         "--spec-version", spec_version, "--output-dir", str(out_dir), *extra])
        saved = sorted(out_dir.glob("*/checks.json"))
        checks = json.loads(saved[-1].read_text()) if saved else []
        return proc, checks


def json_output(proc: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a client printed, or a failure that shows everything it said."""
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"exit {proc.returncode}, stdout is not JSON:\n{tail(proc.stdout)}\n"
                             f"stderr:\n{tail(proc.stderr)}") from None


# Servers --------------------------------------------------------------------------------------------------------


@contextmanager
def running(args: Sequence[str], env: dict[str, str], *, stdout: int | IO[str] = subprocess.DEVNULL,
            ) -> Iterator[tuple[subprocess.Popen[str], IO[str]]]:
    """A server process for the duration of the block; SIGTERM at the end, SIGKILL if it does not leave in time.

    Its stderr goes to a temporary file (a pipe nobody reads would fill and stall it); the file is yielded for
    error messages.
    """
    with tempfile.TemporaryFile("w+") as errlog:
        proc = subprocess.Popen(list(args), env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=errlog, text=True)
        try:
            yield proc, errlog
        finally:
            stop(proc)
            if proc.stdout is not None:
                proc.stdout.close()


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=SERVER_STOP_TIMEOUT)


def read_log(errlog: IO[str]) -> str:
    errlog.flush()
    errlog.seek(0)
    return tail(errlog.read())


@contextmanager
def sandbox_process(*, delay: float) -> Iterator[str]:
    """`python -m flora_mcp.sandbox` with the given run delay; yields its base URL (the first line it prints)."""
    args = [sys.executable, "-m", "flora_mcp.sandbox", "--port", "0", "--delay", str(delay), "--key", SANDBOX_KEY]
    with running(args, server_env(FLORA_POLL_INTERVAL=POLL_INTERVAL), stdout=subprocess.PIPE) as (proc, errlog):
        assert proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_forward_lines, args=(proc.stdout, lines), daemon=True).start()
        try:
            base_url = lines.get(timeout=SERVER_START_TIMEOUT).strip()
        except queue.Empty:
            raise AssertionError(f"the sandbox printed no base URL:\n{read_log(errlog)}") from None
        assert base_url.startswith("http://127.0.0.1:"), base_url
        yield base_url


def _forward_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


@contextmanager
def hosted_server(*extra: str, transport: str = "http", **env: str) -> Iterator[str]:
    """`flora-mcp --transport http|sse --sandbox` on a free loopback port; yields its endpoint (/mcp or /sse) once
    /readyz is 200."""
    port = free_port()
    args = [*flora_mcp_command(), "--transport", transport, "--sandbox", "--host", "127.0.0.1", "--port", str(port),
            *extra]
    with running(args, server_env(**{"FLORA_POLL_INTERVAL": POLL_INTERVAL, **env})) as (proc, errlog):
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(proc, errlog, f"{base}/readyz")
        yield f"{base}/mcp" if transport == "http" else f"{base}/sse"


def wait_until_ready(proc: subprocess.Popen[str], errlog: IO[str], url: str) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"the server exited with {proc.returncode} before it was ready:\n"
                                     f"{read_log(errlog)}")
            try:
                if http.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer 200 within {SERVER_START_TIMEOUT} s:\n{read_log(errlog)}")
