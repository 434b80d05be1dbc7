"""Real parts for the multi-replica tests: flora-mcp replicas as `flora-mcp --transport http --stateless` processes,
a real nginx (Debian's package) in front of them, and the `mcp` SDK's client through it.

nginx runs in the foreground (`daemon off`) from a config written into the test's temporary folder, with its own pid,
log and temp paths, on a free loopback port. Missing binaries fail the test with the command that installs them:
a multi-replica test never passes without its load balancer.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

NGINX_INSTALL = "apt-get install -y nginx"
START_TIMEOUT = 60.0
"""Seconds a replica may take to answer /readyz (three start at once on two busy cores)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def nginx_binary() -> str:
    """nginx's path; fails the test with what to install when there is none."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        pytest.fail(f"nginx not found (PATH, /usr/sbin/nginx): install it with `{NGINX_INSTALL}` (Debian/Ubuntu; "
                    "`.ci/run` does)", pytrace=False)
    return found


@dataclass
class Replica:
    """One `flora-mcp --transport http --stateless` process on a loopback port."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        if not self.log_file.closed:
            self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def submitted(self) -> list[str]:
        """The run ids this replica created, from its log ("run RUN of TOOL submitted")."""
        return [line.split(" run ", 1)[1].split()[0] for line in self.log().splitlines()
                if " run " in line and " submitted" in line]

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye, as a node that dies."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


def start_replica(name: str, env: dict[str, str], folder: Path, port: int | None = None) -> Replica:
    port = port or free_port()
    log_path = folder / f"{name}.log"
    log_file = log_path.open("wb")
    args = [sys.executable, "-m", "flora_mcp", "--transport", "http", "--stateless", "--host", "127.0.0.1",
            "--port", str(port), "--allowed-host", "127.0.0.1", "--allowed-host", "localhost"]
    process = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
    return Replica(name, port, process, log_path, log_file)


async def kill_the_holder(replicas: Sequence[Replica]) -> tuple[Replica, str]:
    """Wait until one replica has created a run, SIGKILL it, and return it with that run's id."""
    with anyio.fail_after(30):
        while not any(r.submitted() for r in replicas):
            await anyio.sleep(0.05)
    [holder] = [r for r in replicas if r.submitted()]
    [run_id] = holder.submitted()
    holder.kill()
    return holder, run_id


async def wait_ready(replicas: Sequence[Replica]) -> None:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
        for replica in replicas:
            with anyio.fail_after(START_TIMEOUT):
                while True:
                    if not replica.alive:
                        pytest.fail(f"replica {replica.name} exited at start:\n{replica.log()[-3000:]}",
                                    pytrace=False)
                    try:
                        if (await http.get(f"{replica.url}/readyz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await anyio.sleep(0.1)


@contextmanager
def replicas_running(count: int, env: dict[str, str], folder: Path,
                     ports: Sequence[int] | None = None) -> Iterator[list[Replica]]:
    """`count` replicas on `env` (their ports chosen, or `ports`), stopped (SIGTERM, then SIGKILL) after the block."""
    started = [start_replica(f"r{i + 1}", env, folder, ports[i] if ports else None) for i in range(count)]
    try:
        yield started
    finally:
        for replica in started:
            if replica.alive:
                replica.process.terminate()
        for replica in started:
            try:
                replica.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                replica.kill()
            replica.log_file.close()


@dataclass
class Nginx:
    """A running nginx: `url` is where clients go."""

    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def error_log(self) -> str:
        path = self.folder / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def nginx_config(port: int, folder: Path, mcp: Sequence[int], webhooks: Sequence[int]) -> str:
    """One server on `port`: `/webhooks/` to the `webhooks` ports, everything else to the `mcp` ports, round robin.

    A replica that refuses connections (killed) is skipped for the next 10 s; a request is never sent twice, since
    nginx passes a POST on to the next upstream only when the first never received it.
    """
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""

    def upstream(name: str, ports: Sequence[int]) -> str:
        servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;\n" for p in ports)
        return f"  upstream {name} {{\n{servers}    keepalive 16;\n  }}\n"

    proxy = """      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 120s;
      proxy_next_upstream error timeout;
"""
    temps = "".join(f"  {kind}_temp_path {folder}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                        "scgi"))
    return f"""{user}
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
{temps}{upstream("mcp", mcp)}{upstream("webhooks", webhooks)}  server {{
    listen 127.0.0.1:{port};
    location /webhooks/ {{
      proxy_pass http://webhooks;
{proxy}    }}
    location / {{
      proxy_pass http://mcp;
{proxy}    }}
  }}
}}
"""


@contextmanager
def nginx_running(folder: Path, mcp: Sequence[int], webhooks: Sequence[int] | None = None,
                  port: int | None = None) -> Iterator[Nginx]:
    """nginx in the foreground in front of `mcp` (and `webhooks`, by default the same) ports, for the block."""
    binary = nginx_binary()
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    conf = folder / "nginx.conf"
    conf.write_text(nginx_config(port, folder, mcp, webhooks or mcp))
    checked = subprocess.run([binary, "-t", "-q", "-p", str(folder), "-c", str(conf)], capture_output=True,
                             text=True, timeout=30, check=False)
    if checked.returncode != 0:
        pytest.fail(f"nginx refused its config: {checked.stderr}", pytrace=False)
    process = subprocess.Popen([binary, "-p", str(folder), "-c", str(conf)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = Nginx(port, folder, process)
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                pytest.fail(f"nginx exited: {server.error_log()}", pytrace=False)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"nginx did not listen on {port}: {server.error_log()}", pytrace=False)
                time.sleep(0.05)
        yield server
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


@asynccontextmanager
async def mcp_through(url: str) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session (the `mcp` SDK's) with `url`/mcp, over streamable HTTP."""
    async with create_mcp_http_client() as http, \
            streamable_http_client(f"{url}/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        with anyio.fail_after(30):
            await session.initialize()
        yield session


def structured(result: Any) -> dict[str, Any]:
    assert result.structured_content is not None, result
    return dict(result.structured_content)
