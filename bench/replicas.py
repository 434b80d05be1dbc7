"""Benchmark: flora-mcp behind nginx with 1 and 3 replicas, and completion -> result with webhooks against polling.

    nice -n 10 .venv/bin/python bench/replicas.py            # about two minutes on 2 cores
    nice -n 10 .venv/bin/python bench/replicas.py --quick    # fewer calls

Each pair is measured in one run against the same sandbox (its own process): the per-call overhead is the latency of
a technique call through nginx and flora-mcp minus that of the same run created and polled over plain HTTP (same
sandbox, same poll delay); calls/s is what N concurrent MCP clients get through. Then one replica with FLORA's
webhooks (FLORA_PUBLIC_URL, FLORA_WEBHOOK_SECRET) and one polling alone (FLORA_POLL_INTERVAL 2, the default) wait on
the same runs: completion -> result is the moment the client has the result minus the run's `completed_at` in the
sandbox (one clock). Writes bench/results/replicas.md. Needs Debian's nginx (`apt-get install -y nginx`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.replicas.replicas_support import free_port, nginx_config  # noqa: E402

KEY = "sk_sandbox_local"
SECRET = "whsec_sandbox_local_0123456789abcdef"
FAST_POLL = 0.02
TOOL, ARGS = "split-text", {"text": "a\nb"}

SANDBOX = """
import json, sys, anyio
from flora_mcp.sandbox import Account, SandboxConfig, serve_sandbox
async def main():
    config = json.loads(sys.argv[1])
    config["keys"] = {key: Account() for key in config["keys"]}
    async with serve_sandbox(SandboxConfig(**config)) as box:
        print(box.origin, flush=True)
        await anyio.sleep_forever()
anyio.run(main)
"""


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


@contextmanager
def process(args: list[str], env: dict[str, str] | None = None,
            log: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    out = log.open("wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if log is None else out,
                            stderr=out if log else subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]


@contextmanager
def sandbox(config: dict[str, Any]) -> Iterator[str]:
    with process([sys.executable, "-c", SANDBOX, json.dumps(config)], env={**os.environ, "PYTHONPATH": str(ROOT)}) \
            as proc:
        assert proc.stdout is not None
        yield proc.stdout.readline().decode().strip()


def env_for(origin: str, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")}
    env.update({"PYTHONPATH": str(ROOT), "FLORA_API_KEY": KEY, "FLORA_BASE_URL": f"{origin}/api/v1",
                "FLORA_JOURNAL": ":memory:", "FLORA_CATALOG_CACHE": "off", "FLORA_TOOLS_MODE": "full",
                "FLORA_LOG_LEVEL": "WARNING", **values})
    return env


@contextmanager
def replicas(count: int, env: dict[str, str], folder: Path) -> Iterator[list[int]]:
    ports = [free_port() for _ in range(count)]
    with ExitStack() as stack:
        for i, port in enumerate(ports):
            stack.enter_context(process(
                [sys.executable, "-m", "flora_mcp", "--transport", "http", "--stateless", "--host", "127.0.0.1",
                 "--port", str(port), "--allowed-host", "127.0.0.1"], env, folder / f"r{count}-{i}.log"))
        deadline = time.monotonic() + 90
        for port in ports:
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"replica on {port} did not start: see {folder}")
                time.sleep(0.1)
        yield ports


@contextmanager
def nginx(folder: Path, ports: list[int], port: int | None = None) -> Iterator[str]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(binary, os.X_OK):
        raise SystemExit("nginx not found: apt-get install -y nginx")
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    (folder / "nginx.conf").write_text(nginx_config(port, folder, ports, ports))
    with process([binary, "-p", str(folder), "-c", str(folder / "nginx.conf")]):
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"nginx did not start: {(folder / 'error.log').read_text()}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"


@asynccontextmanager
async def session(url: str) -> AsyncIterator[ClientSession]:
    async with create_mcp_http_client() as http, \
            streamable_http_client(f"{url}/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as client:
        await client.initialize()
        yield client


async def load(url: str, clients: int, calls: int) -> tuple[float, list[float]]:
    """calls/s and per-call latencies of `clients` sessions making `calls` calls in all."""
    latencies: list[float] = []
    left = calls

    async def client() -> None:
        nonlocal left
        async with session(url) as s:
            await s.call_tool(TOOL, ARGS)  # warm: catalog, connections
            while left > 0:
                left -= 1
                started = time.perf_counter()
                result = await s.call_tool(TOOL, ARGS)
                latencies.append(time.perf_counter() - started)
                assert result.structured_content and result.structured_content["status"] == "completed", result

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(clients):
            tg.start_soon(client)
    return len(latencies) / (time.perf_counter() - started), latencies


async def baseline(origin: str, clients: int, calls: int) -> list[float]:
    """The same runs over plain HTTP: create, wait the same poll delay, poll until completed."""
    latencies: list[float] = []
    left = calls
    body = {"inputs": [{"id": "text", "type": "text", "value": ARGS["text"]}], "mode": "async"}

    async def client() -> None:
        nonlocal left
        async with httpx.AsyncClient(base_url=f"{origin}/api/v1", headers={"Authorization": f"Bearer {KEY}"},
                                     timeout=60) as http:
            while left > 0:
                left -= 1
                started = time.perf_counter()
                run = (await http.post(f"/techniques/{TOOL}/runs", json=body)).json()
                while run["status"] not in ("completed", "failed"):
                    await anyio.sleep(FAST_POLL)
                    run = (await http.get(run["poll_url"])).json()
                latencies.append(time.perf_counter() - started)

    async with anyio.create_task_group() as tg:
        for _ in range(clients):
            tg.start_soon(client)
    return latencies


async def completion_latency(url: str, origin: str, runs: int) -> tuple[list[float], list[int]]:
    """Seconds from each run's `completed_at` to its result in the client, and the sandbox's polls per run."""
    gaps: list[float] = []
    async with httpx.AsyncClient(timeout=30) as http:
        before = len((await http.get(f"{origin}/_sandbox/requests")).json()["requests"])

        async def one() -> None:
            async with session(url) as s:
                result = await s.call_tool(TOOL, ARGS)
                got = time.time()
                data = result.structured_content or {}
                assert data.get("status") == "completed", data
                run = (await http.get(f"{origin}/api/v1/runs/{data['run_id']}",
                                      headers={"Authorization": f"Bearer {KEY}"})).json()
                gaps.append(got - run["completed_at"] / 1000)

        async with anyio.create_task_group() as tg:
            for _ in range(runs):
                tg.start_soon(one)
        log = (await http.get(f"{origin}/_sandbox/requests")).json()["requests"][before:]
    # flora-mcp polls the nested route; the top-level GET /runs/{id} above is this benchmark reading completed_at.
    polls = [r for r in log if r["route"] == "get_technique_run" and r["status"] == 200]
    return gaps, [len(polls)]


def ms(value: float) -> str:
    return f"{value * 1000:,.0f} ms" if value >= 0.0995 else f"{value * 1000:.1f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    clients, calls, runs = (4, 80, 6) if args.quick else (8, 240, 12)
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory(prefix="flora-bench-replicas-") as tmp:
        folder = Path(tmp)
        say(f"# Replicas behind nginx ({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')})")
        say()
        with sandbox({"keys": [KEY], "estimate_scale": 0.0, "run_delay": 0.0,
                      "enable_control": True}) as origin:
            rows = []
            for count in (1, 3):
                env = env_for(origin, FLORA_POLL_INTERVAL=str(FAST_POLL))
                with replicas(count, env, folder) as ports, nginx(folder / f"nginx{count}", ports) as url:
                    # Beside each row, with the same processes up: the machine's load drifts.
                    base = await baseline(origin, clients, calls)
                    rate, latencies = await load(url, clients, calls)
                    base += await baseline(origin, clients, calls)
                rows.append((count, rate, latencies, base))
            say(f"Calls through nginx, {clients} MCP clients at once, {calls} calls of `{TOOL}` (sandbox: 0 ms, "
                f"no run delay; poll after {FAST_POLL * 1000:.0f} ms); overhead = latency minus the same run over "
                f"plain HTTP, measured before and after each row with its processes up:")
            say()
            say("| replicas | calls/s | p50 latency | p99 latency | plain HTTP p50 / p99 | p50 overhead "
                "| p99 overhead |")
            say("|---|---|---|---|---|---|---|")
            for count, rate, latencies, base in rows:
                say(f"| {count} | {rate:.1f} | {ms(statistics.median(latencies))} | {ms(p(latencies, 0.99))} | "
                    f"{ms(statistics.median(base))} / {ms(p(base, 0.99))} | "
                    f"{ms(statistics.median(latencies) - statistics.median(base))} | "
                    f"{ms(p(latencies, 0.99) - p(base, 0.99))} |")
            say()
        for scale, label in ((1.0, "right estimate"), (0.0, "no estimate")):
            with sandbox({"keys": [KEY], "estimate_scale": scale, "run_delay": 3.0,
                          "enable_control": True}) as origin:
                results = {}
                for mode in ("webhooks", "polling"):
                    port = free_port()
                    extra = {"FLORA_PUBLIC_URL": f"http://127.0.0.1:{port}/mcp", "FLORA_WEBHOOK_SECRET": SECRET} \
                        if mode == "webhooks" else {}
                    with replicas(1, env_for(origin, **extra), folder) as ports, \
                            nginx(folder / f"nginx-{mode}-{scale}", ports, port) as url:
                        results[mode] = await completion_latency(url, origin, runs)
            say(f"Completion -> result, runs of 3 s ({label}), {runs} at once, 1 replica behind nginx:")
            say()
            say("| mode | median | p90 | max | polls per run |")
            say("|---|---|---|---|---|")
            for mode, (gaps, polls) in results.items():
                say(f"| {mode} | {ms(statistics.median(gaps))} | {ms(p(gaps, 0.9))} | {ms(max(gaps))} | "
                    f"{polls[0] / runs:.1f} |")
            say()
    out = ROOT / "bench" / "results" / "replicas.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    anyio.run(main)
