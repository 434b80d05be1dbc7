"""What every benchmark module shares: the report, percentiles, the sandbox in its own process, a server's memory."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
RUN_PY = Path(__file__).resolve().parent / "run.py"
POLL_ROUTES = ("get_run", "get_technique_run")
README_BEGIN = "<!-- bench:begin (written by bench/run.py; do not edit by hand) -->"
README_END = "<!-- bench:end -->"


# The report ------------------------------------------------------------------------------------------------------


@dataclass
class Report:
    """Rows of results and one PASS/FAIL per target, printed as they come and written as Markdown at the end."""

    lines: list[str] = field(default_factory=list)
    verdicts: list[tuple[str, bool, str]] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    """Why a target is missed, by a part of its name: kept beside the FAIL in the summary."""

    def say(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.say("| " + " | ".join(header) + " |")
        self.say("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            self.say("| " + " | ".join(row) + " |")
        self.say()

    def target(self, name: str, ok: bool, detail: str) -> str:
        self.verdicts.append((name, ok, detail))
        return f"{'PASS' if ok else 'FAIL'} ({detail})"

    def machine(self) -> str:
        return (f"{os.cpu_count()} CPUs ({_cpu_model()}), Python {sys.version.split()[0]}, "
                f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")

    def summary(self) -> list[str]:
        passed = sum(ok for _, ok, _ in self.verdicts)
        lines = [f"Targets: {passed} of {len(self.verdicts)} PASS", "", "| target | verdict | why it misses |",
                 "|---|---|---|"]
        lines += [f"| {name} | {'PASS' if ok else 'FAIL'} ({detail}) | {'' if ok else self.reason(name)} |"
                  for name, ok, detail in self.verdicts]
        return lines

    def reason(self, name: str) -> str:
        return next((why for part, why in self.reasons.items() if part in name), "not explained yet")

    def markdown(self, command: str) -> str:
        head = ["# flora-mcp benchmark results", "", f"Command: `{command}`", "", f"Machine: {self.machine()}", "",
                *self.summary(), ""]
        return "\n".join(head + self.lines) + "\n"

    def write(self, path: Path, command: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.markdown(command))

    def write_readme(self, readme: Path, command: str) -> bool:
        """Replace the README's benchmark section (between the bench markers); False when it has no markers."""
        text = readme.read_text()
        if README_BEGIN not in text or README_END not in text:
            return False
        before, rest = text.split(README_BEGIN, 1)
        _, after = rest.split(README_END, 1)
        section = "\n".join([f"Command: `{command}`", "", f"Machine: {self.machine()}", "", *self.summary(), ""]) + "\n"
        readme.write_text(f"{before}{README_BEGIN}\n{section}{README_END}{after}")
        return True


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def proc_status_mb(pid: int, field_name: str) -> float | None:
    """VmRSS or VmHWM of a process, in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The sandbox in its own process ----------------------------------------------------------------------------------


@dataclass
class Box:
    base_url: str
    api_key: str
    proc: Process | None = None
    reader: BufferedByteReceiveStream | None = None

    async def count(self, *routes: str) -> int:
        """How many requests of these routes the sandbox has answered so far."""
        assert self.proc is not None and self.proc.stdin is not None and self.reader is not None
        await self.proc.stdin.send(f"count {','.join(routes)}\n".encode())
        return int((await self.reader.receive_until(b"\n", 1 << 16)).decode())


@asynccontextmanager
async def sandbox(**config: Any) -> AsyncIterator[Box]:
    """A sandbox in a child process (its own interpreter, so its work never competes with what is measured)."""
    command = [PY, str(RUN_PY), "--serve-sandbox", json.dumps(config)]
    async with await anyio.open_process(command, stderr=None) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        reader = BufferedByteReceiveStream(proc.stdout)
        base_url = (await reader.receive_until(b"\n", 1 << 16)).decode().strip()
        api_key = (await reader.receive_until(b"\n", 1 << 16)).decode().strip()
        try:
            yield Box(base_url, api_key, proc, reader)
        finally:
            await proc.stdin.aclose()
            with anyio.move_on_after(5):
                await proc.wait()


def serve_sandbox_main(config_json: str) -> None:
    from flora_mcp.sandbox import Account, SandboxConfig, serve_sandbox

    config = json.loads(config_json)
    key = "sk_live_bench0key"

    async def serve() -> None:
        async with serve_sandbox(SandboxConfig(keys={key: Account()}, **config)) as box:
            sys.stdout.write(f"{box.base_url}\n{key}\n")
            sys.stdout.flush()
            while line := await anyio.to_thread.run_sync(sys.stdin.readline):  # until the bench closes our stdin
                routes = line.split()[1].split(",")
                sys.stdout.write(f"{sum(len(box.requests_for(r)) for r in routes)}\n")
                sys.stdout.flush()

    anyio.run(serve)


def server_env(box: Box, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")}
    env.update({"FLORA_API_KEY": box.api_key, "FLORA_BASE_URL": box.base_url, "FLORA_LOG_LEVEL": "WARNING",
                "FLORA_JOURNAL": str(Path(tempfile.gettempdir()) / f"flora-bench-{uuid.uuid4().hex}.sqlite3"),
                "FLORA_CATALOG_CACHE": "off"})
    env.update(extra)
    return env
