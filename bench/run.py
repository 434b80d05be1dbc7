"""flora-mcp benchmarks against the sandbox: start-up, per-call overhead, poll timing, memory, tools/list size.

    nice -n 10 .venv/bin/python bench/run.py          # everything; writes README.md's benchmark section too
    nice -n 10 .venv/bin/python bench/run.py --quick  # fewer sizes, repeats and runs: under two minutes

Each measurement comes with a baseline measured in the same run, against the same sandbox, and the report gives the
ratio as well as the seconds: these machines are noisy, ratios much less so. The sandbox runs in its own process with
0 and 30 ms of latency added to every request. The sections: start-up and memory (startup.py), per-call overhead
(overhead.py), completion -> result and polls (polling.py), hosted throughput (hosted.py), many runs and big catalogs
(scale.py). The report goes to stdout and to bench/results/latest.md; a full run (or --readme) also replaces the
README's benchmark section between its bench markers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from common import ROOT, Report, serve_sandbox_main
from overhead import bench_overhead
from polling import bench_polling
from startup import bench_size_and_memory, bench_startup, naive_main

MISSED_BECAUSE = {
    "<= 0.5 x naive": "at 0 ms the naive loader is the import floor plus a fraction of a second: half of it is below "
                      "the cost of importing the SDK at all",
    "floor + 1.5 x pages x RTT": "at 0 ms a page takes 1-2 ms, so the bound is a few ms above the floor: less "
                                 "than the import's own noise from round to round",
    "full mode <=": "start-up is CPU-bound: the SDK's import (the floor) on one core, the first catalog load in a "
                    "forked child on the other (core/catalog_process.py); what is left on the server's core is "
                    "flora-mcp's own imports (about 150 ms here), building 1,000 tools from the child's techniques "
                    "(60-90 ms) and 2.3 MB of tools/list, and this machine's noise from round to round",
    "hosted tools/list": "flora-mcp answers from prepared tools at about 3 ms of server CPU a request, the "
                         "baseline's echo at 2.5-3 ms; below 0.8 x only in rounds a load burst hit",
    "overhead at 100": "a tail, not the median: the slowest calls waited 10-20 ms on a run-journal write "
                       "queued behind the writer's own checkpoint, which bounds the WAL (16 MB) under "
                       "unbroken load and waits out two fsyncs (10-30 ms on this VM); with the bound out "
                       "of reach or the journal in memory their writes stay under 9 ms, and a 0.5 ms "
                       "interpreter switch interval changed nothing. Others had their create answered "
                       "15-30 ms later than the median call's, with either journal (scratch timings of "
                       "each phase of the slowest 1%)",
}
"""Why a missed target misses, as far as the profile says: printed beside its FAIL."""
SECTIONS = ("startup", "overhead", "polling", "hosted", "scale")



# Main --------------------------------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> int:
    report = Report(reasons=MISSED_BECAUSE)
    sizes = [120] if args.quick else [120, 500, 1000]
    repeats = 1 if args.quick else 3
    started = time.perf_counter()
    only = set(args.only or SECTIONS)
    took: list[str] = []

    async def section(name: str, run: Callable[[], Awaitable[object]]) -> None:
        if name in only:
            began = time.perf_counter()
            await run()
            took.append(f"{name} {time.perf_counter() - began:.0f} s")

    async def startup() -> None:
        spawns = await bench_startup(report, sizes, repeats)
        bench_size_and_memory(report, spawns, max(sizes))

    async def hosted() -> None:
        from hosted import bench_hosted

        await bench_hosted(report, args.quick)

    async def scale() -> None:
        from scale import bench_scale

        await bench_scale(report, args.quick)

    await section("startup", startup)
    await section("overhead", lambda: bench_overhead(report, args.quick))
    await section("polling", lambda: bench_polling(report, args.quick))
    await section("hosted", hosted)
    await section("scale", scale)
    failed = [name for name, ok, _ in report.verdicts if not ok]
    report.say(f"Targets: {len(report.verdicts) - len(failed)} of {len(report.verdicts)} PASS; "
               f"{time.perf_counter() - started:.0f} s in all ({', '.join(took)}).")
    for name in failed:
        report.say(f"- FAIL: {name}: {report.reason(name)}")
    command = " ".join(["nice -n 10 .venv/bin/python bench/run.py", *sys.argv[1:]])
    report.write(Path(args.out), command)
    if args.readme or not (args.quick or args.only):
        written = report.write_readme(ROOT / "README.md", command)
        print(f"README.md benchmark section {'written' if written else 'NOT written: no bench markers'}", flush=True)
    return 1 if failed else 0


def run_in_scratch_dir(args: argparse.Namespace) -> int:
    """Run the benchmarks with every journal, cache and temporary file in one folder, removed at the end."""
    with tempfile.TemporaryDirectory(prefix="flora-bench-") as scratch:
        tempfile.tempdir = scratch
        try:
            return anyio.run(main, args)
        finally:
            tempfile.tempdir = None


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="120 techniques, one repeat, the 100-call overhead rows, fewer runs: under two minutes")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="Run only this section (repeatable).")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.md"), help="Markdown report path")
    parser.add_argument("--serve-sandbox", metavar="JSON", help=argparse.SUPPRESS)
    parser.add_argument("--naive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--readme", action="store_true",
                        help="Also write the README's benchmark section (a full run always does).")
    parser.add_argument("--serve-baseline", metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sandbox:
        serve_sandbox_main(args.serve_sandbox)
    elif args.serve_baseline:
        from hosted import baseline_main

        baseline_main(args.serve_baseline)
    elif args.naive:
        naive_main()
    else:
        raise SystemExit(run_in_scratch_dir(args))


if __name__ == "__main__":
    cli()
