"""A process holding many runs, and memory with a big catalog: one stdio flora-mcp, driven over its pipes."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from common import POLL_ROUTES, PY, Box, Report, cpu_seconds, ms, proc_status_mb, sandbox, server_env

RUN_SECONDS = (30.0, 12.0)
"""How long each of the many runs takes in the sandbox (full run, --quick): every one is in flight while the others
are created."""


async def _send(proc: Process, *messages: dict[str, Any]) -> None:
    assert proc.stdin is not None
    await proc.stdin.send(b"".join(json.dumps(m).encode() + b"\n" for m in messages))


async def _initialize(proc: Process, reader: BufferedByteReceiveStream) -> None:
    await _send(proc, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
    while json.loads(await reader.receive_until(b"\n", 1 << 30)).get("id") != 0:
        pass
    await _send(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})


async def many_runs(box: Box, count: int, run_seconds: float) -> dict[str, float]:
    """`count` tool calls at once; figures once every one has answered."""
    env = server_env(box, FLORA_POLL_INTERVAL="2", FLORA_MAX_WAIT="600", FLORA_PREVIEW="off")
    async with await anyio.open_process([PY, "-m", "flora_mcp"], env=env, stderr=None) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        reader = BufferedByteReceiveStream(proc.stdout)
        await _initialize(proc, reader)
        started = time.perf_counter()
        await _send(proc, *({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {
            "name": "synthetic-0001", "arguments": {"prompt": f"bench {i}"}}} for i in range(1, count + 1)))
        done: dict[int, bool] = {}
        rss_peak = 0.0
        window: list[tuple[float, int]] = []  # (CPU seconds, polls) while every run is in flight

        async def sample() -> None:
            nonlocal rss_peak
            while True:
                rss_peak = max(rss_peak, proc_status_mb(proc.pid, "VmRSS") or 0.0)
                if await box.count("create_technique_run", "create_run") >= count and not done:
                    window.append((cpu_seconds(proc.pid), await box.count(*POLL_ROUTES)))
                await anyio.sleep(1.0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sample)
            while len(done) < count:
                message = json.loads(await reader.receive_until(b"\n", 1 << 30))
                if "id" in message and message.get("id"):
                    result = message.get("result") or {}
                    status = (result.get("structuredContent") or {}).get("status")
                    done[message["id"]] = status == "completed"
            tg.cancel_scope.cancel()
        elapsed = time.perf_counter() - started
        hwm = proc_status_mb(proc.pid, "VmHWM") or rss_peak
        await proc.stdin.aclose()
        await proc.wait()
    cpu_per_poll = ((window[-1][0] - window[0][0]) / max(window[-1][1] - window[0][1], 1)
                    if len(window) >= 2 else float("nan"))
    return {"completed": sum(done.values()), "elapsed": elapsed, "peak_rss": hwm, "cpu_per_poll": cpu_per_poll,
            "polls": float(window[-1][1] - window[0][1]) if len(window) >= 2 else 0.0}


async def catalog_memory(box: Box) -> tuple[float, float, int]:
    """Spawn in full mode and wait for the whole catalog; (peak RSS MB, spawn -> catalog complete s, tools)."""
    env = server_env(box, FLORA_TOOLS_MODE="full")
    started = time.perf_counter()
    async with await anyio.open_process([PY, "-m", "flora_mcp"], env=env, stderr=None) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        reader = BufferedByteReceiveStream(proc.stdout)
        await _initialize(proc, reader)
        await _send(proc, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        tools = 0
        while True:
            message = json.loads(await reader.receive_until(b"\n", 1 << 30))
            if message.get("id") == 1:
                tools = len(message["result"]["tools"])
                break
        complete = time.perf_counter() - started
        peak = proc_status_mb(proc.pid, "VmHWM") or 0.0
        await proc.stdin.aclose()
        await proc.wait()
    return peak, complete, tools


async def bench_scale(report: Report, quick: bool) -> None:
    count = 500
    run_seconds = RUN_SECONDS[quick]
    report.say(f"## A process holding {count} runs")
    report.say()
    report.say(f"One stdio flora-mcp (FLORA_POLL_INTERVAL=2), {count} tools/call sent at once over its pipes, each run "
               f"lasting {run_seconds:g} s in the sandbox (0 ms latency). RSS: the server's peak (VmHWM). CPU per "
               "poll: the server's user+system CPU over the seconds when every run was created and none had ended, "
               "divided by the polls the sandbox answered then (each poll's share of the waiting, wake-up, "
               "request, journal and progress work).")
    report.say()
    async with sandbox(latency=0.0, extra_techniques=1, estimate_scale=0.0,
                       technique_delays={"synthetic-0001": run_seconds}) as box:
        figures = await many_runs(box, count, run_seconds)
    report.table(["runs", "completed", "wall", "peak RSS", "polls measured", "CPU per poll", "every run completes",
                  "RSS <= 200 MB"],
                 [[str(count), f"{figures['completed']:.0f}", ms(figures["elapsed"]), f"{figures['peak_rss']:.0f} MB",
                   f"{figures['polls']:.0f}", f"{figures['cpu_per_poll'] * 1000:.2f} ms",
                   report.target(f"{count} runs in flight: every one completes", figures["completed"] == count,
                                 f"{figures['completed']:.0f} of {count}"),
                   report.target(f"{count} runs in flight: RSS <= 200 MB", figures["peak_rss"] <= 200,
                                 f"{figures['peak_rss']:.0f} MB")]])
    sizes = [1000] if quick else [1000, 5000]
    report.say("## Memory with a big catalog (full mode)")
    report.say()
    report.say("`FLORA_TOOLS_MODE=full`, spawn -> tools/list answered with every technique's tool (every schema "
               "fetched, 0 ms latency); the server's peak RSS (VmHWM) then.")
    report.say()
    rows = []
    for size in sizes:
        async with sandbox(latency=0.0, extra_techniques=size, page_size=100) as box:
            peak, complete, tools = await catalog_memory(box)
        verdict = (report.target(f"peak RSS at {size} techniques, full mode <= 150 MB", peak <= 150, f"{peak:.0f} MB")
                   if size == 1000 else "info")
        rows.append([f"{size:,}", str(tools), ms(complete), f"{peak:.0f} MB", verdict])
    report.table(["techniques", "tools", "spawn -> full tools/list", "peak RSS", "<= 150 MB (1,000)"], rows)
