"""Upload throughput: flora-mcp sending a 50 MB file to a signed upload target, against curl sending the same file to
the same target, in the same run, against the same sandbox (in its own process, as in bench/run.py).

    .venv/bin/python bench/uploads.py            # 5 rounds of each, alternating; about half a minute
    .venv/bin/python bench/uploads.py --quick    # 2 rounds

Both send the presigned POST form (every field, then the file part) to the sandbox's bucket route; curl's time is its
own `time_total`, ours the wall time of `Assets`' request. The end-to-end row is a whole `upload_file` (reserve, send,
complete, wait for ready). The report goes to stdout and to bench/results/uploads.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Box, Report, sandbox  # noqa: E402

SIZE = 50 * 1024 * 1024
TARGET_RATIO = 0.5
"""flora-mcp's throughput should be at least this share of curl's."""


def make_file(folder: Path) -> Path:
    """50 MB whose first bytes sniff as an MP4 video (what FLORA would take), then noise."""
    path = folder / "bench-upload.mp4"
    head = (24).to_bytes(4, "big") + b"ftypisom" + b"\x00\x00\x02\x00" + b"isomiso2"
    with path.open("wb") as file:
        file.write(head)
        remaining = SIZE - len(head)
        while remaining:
            chunk = os.urandom(min(remaining, 1 << 20))
            file.write(chunk)
            remaining -= len(chunk)
    return path


async def curl_upload(url: str, fields: dict[str, str], path: Path, content_type: str) -> float:
    command = ["curl", "-s", "-o", "/dev/null", "--noproxy", "*", "-w", "%{http_code} %{time_total}"]
    for name, value in fields.items():
        command += ["--form-string", f"{name}={value}"]
    command += ["-F", f"file=@{path};type={content_type}", url]
    result = await anyio.run_process(command)
    status, seconds = result.stdout.decode().split()
    if status != "204":
        raise RuntimeError(f"curl upload answered HTTP {status}")
    return float(seconds)


async def main(args: argparse.Namespace) -> int:
    from flora_mcp.api.assets import Assets
    from flora_mcp.api.client import FloraClient

    report = Report()
    rounds = 2 if args.quick else 5
    folder = Path(tempfile.mkdtemp(prefix="flora-bench-upload-"))
    try:
        path = make_file(folder)
        async with sandbox() as box:
            ours, theirs, whole = await measure(box, path, rounds, FloraClient, Assets)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    mb = SIZE / 1024 / 1024
    ours_rate, curl_rate = mb / statistics.median(ours), mb / statistics.median(theirs)
    ratio = ours_rate / curl_rate
    verdict = report.target(f"upload throughput >= {TARGET_RATIO} x curl", ratio >= TARGET_RATIO, f"{ratio:.2f}")
    report.say(f"## Upload throughput: {mb:.0f} MB to the signed upload target, {rounds} rounds each, median")
    report.say()
    report.table(["sender", "median s", "MB/s", "best MB/s", "vs curl", "target"], [
        ["curl -F", f"{statistics.median(theirs):.2f}", f"{curl_rate:.1f}", f"{mb / min(theirs):.1f}", "1.00", "-"],
        ["flora-mcp Assets", f"{statistics.median(ours):.2f}", f"{ours_rate:.1f}", f"{mb / min(ours):.1f}",
         f"{ratio:.2f}", verdict],
        ["flora-mcp upload_file (end to end)", f"{statistics.median(whole):.2f}",
         f"{mb / statistics.median(whole):.1f}", f"{mb / min(whole):.1f}", "-", "-"],
    ])
    command = " ".join([".venv/bin/python bench/uploads.py", *sys.argv[1:]])
    report.write(Path(args.out), command)
    return 0 if ratio >= TARGET_RATIO else 1


async def measure(box: Box, path: Path, rounds: int, client_type: type, assets_type: type
                  ) -> tuple[list[float], list[float], list[float]]:
    ours: list[float] = []
    theirs: list[float] = []
    whole: list[float] = []
    async with client_type(api_key=box.api_key, base_url=box.base_url, timeout=120) as client:
        assets = assets_type(client, poll_interval=0.05)
        reservation = await assets.reserve(workspace_id="ws_sandbox", content_type="video/mp4",
                                           file_name=path.name)
        target = reservation.upload
        source = await _source(path)
        for _ in range(rounds):
            started = time.perf_counter()
            await assets._send_to_target(reservation, source, "video/mp4", path.name, None)
            ours.append(time.perf_counter() - started)
            theirs.append(await curl_upload(target.url, target.form_fields, path, "video/mp4"))
            started = time.perf_counter()
            await assets.upload_file(path, workspace_id="ws_sandbox")
            whole.append(time.perf_counter() - started)
    return ours, theirs, whole


async def _source(path: Path):  # type: ignore[no-untyped-def]
    from flora_mcp.api._upload_body import open_source

    return await open_source(path)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 rounds instead of 5")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "uploads.md"), help="Markdown report path")
    raise SystemExit(anyio.run(main, parser.parse_args()))


if __name__ == "__main__":
    cli()
