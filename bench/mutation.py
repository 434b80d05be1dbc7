"""Mutation testing of the money and trust modules with mutmut, one module at a time, each against its own tests.

    .venv/bin/pip install -e '.[mutation]'
    .venv/bin/python bench/mutation.py                      # every module below, in order (about an hour on 2 cores)
    .venv/bin/python bench/mutation.py api/retry.py         # one module (a path under flora_mcp/ or a name below)
    .venv/bin/python bench/mutation.py --survivors api/retry.py   # and print the diff of every surviving mutant
    .venv/bin/python bench/mutation.py --postgres store/base.py   # also the storage tests' PostgreSQL cases

Each module is mutated in a scratch copy of the tree (flora_mcp/, tests/, pyproject.toml with a [tool.mutmut] section
naming that one file and its tests), so mutmut's `mutants/` folder and cache never touch the checkout. mutmut runs
one child at a time under `nice -n 10` (the machine is shared), and for each mutant only the tests that called the
mutated function. The report (killed / survived / timeout / no tests / score per module) goes to stdout and to
bench/results/mutation-latest.md (bench/results/mutation.md is the write-up of every run, kept by hand). The storage
tests run on SQLite only unless --postgres: no module mutated here is PostgreSQL-only (store/postgres.py is not in
the list), and each PostgreSQL case doubles a mutant's test time.
The checkout's clients/ (with its node_modules) is linked into the copy, for the OAuth tests' oidc-provider rig.
Score = killed (timeouts count as killed) / all mutants: a mutant that no selected test
reaches ("no tests") counts as surviving.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

# Each module with the tests that exercise it (its mirror in tests/ first). Order: cheapest and most central first.
MODULES: dict[str, list[str]] = {
    "api/retry.py": ["tests/api/test_retry.py", "tests/api/test_client.py"],
    "api/errors.py": ["tests/api/test_errors.py", "tests/api/test_client.py", "tests/api/test_retry.py",
                      "tests/api/test_liberal.py", "tests/api/test_assets.py"],
    "api/client.py": ["tests/api/test_client.py", "tests/api/test_client_wire.py", "tests/api/test_liberal.py",
                      "tests/api/test_assets.py", "tests/core/test_pagination.py",
                      "tests/reliability/test_malformed.py"],
    "_fetch_guard.py": ["tests/test_fetch_guard.py", "tests/test_fetch_guard_policy.py", "tests/api/test_assets.py"],
    "hosted/_auth.py": ["tests/hosted/test_auth.py", "tests/hosted/test_auth_oauth.py",
                        "tests/hosted/test_principals.py", "tests/hosted/test_quotas.py"],
    "hosted/_oauth.py": ["tests/hosted/test_oauth_tokens.py", "tests/hosted/test_auth_oauth.py",
                         "tests/hosted/test_oauth_server.py", "tests/hosted/test_oauth_rules.py"],
    "core/budget.py": ["tests/core/test_budget.py", "tests/core/test_costs.py", "tests/core/test_multiple.py",
                       "tests/core/test_confirm.py"],
    "core/catalog.py": ["tests/core/test_catalog.py", "tests/core/test_translator.py",
                        "tests/core/test_combinations.py", "tests/core/test_descriptions.py",
                        "tests/core/test_pagination.py", "tests/core/test_compact.py", "tests/core/test_filters.py",
                        "tests/core/test_names_across_processes.py", "tests/api/test_liberal.py",
                        "tests/core/test_catalog_rules.py"],
    "core/journal.py": ["tests/core/test_journal.py", "tests/core/test_journal_faults.py"],
    # The run lifecycle's own tests, and those of what it decides (confirmation, multiple runs, local files, the
    # wait's cap, the session's spend, polling); test_translator.py, which reaches it too, made a run too long.
    "core/runs.py": ["tests/core/test_runs.py", "tests/core/test_idempotency_wire.py",
                     "tests/core/test_runs_journal_writes.py", "tests/core/test_runs_unknown_outcome.py",
                     "tests/core/test_heartbeat.py", "tests/core/test_confirm.py", "tests/core/test_multiple.py",
                     "tests/core/test_local_inputs.py", "tests/core/test_max_wait.py", "tests/core/test_costs.py",
                     "tests/core/test_polling.py", "tests/core/test_runs_answers.py",
                     "tests/core/test_resume.py"],
    # Its mirror only: every create of test_runs*.py reaches sending/answered, which made a run take 40 minutes.
    "core/recovery.py": ["tests/core/test_recovery.py"],
    "store/base.py": ["tests/store/test_budget_store.py", "tests/store/test_journal.py",
                      "tests/store/test_tasks_assets_schema.py", "tests/core/test_budget.py"],
    "store/sqlite.py": ["tests/store/test_budget_store.py", "tests/store/test_journal.py",
                        "tests/store/test_tasks_assets_schema.py", "tests/core/test_journal_faults.py",
                        "tests/store/test_two_processes.py", "tests/store/test_sqlite_checkpoint.py"],
    "store/_checkpoint.py": ["tests/store/test_sqlite_checkpoint.py", "tests/store/test_journal.py",
                             "tests/reliability/test_journal_disk_full.py"],
}

# mutmut's exit codes per mutant, as in mutmut.stats.status_by_exit_code.
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          37: "killed", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout"}


@dataclass
class Score:
    module: str
    counts: dict[str, int]
    survivors: list[str]
    seconds: float

    @property
    def tested(self) -> int:
        return sum(n for status, n in self.counts.items() if status != "skipped")

    @property
    def score(self) -> float:
        caught = self.counts.get("killed", 0) + self.counts.get("timeout", 0)
        return 100.0 * caught / self.tested if self.tested else 0.0

    def row(self) -> list[str]:
        c = self.counts
        return [f"`{self.module}`", str(sum(c.values())), str(c.get("killed", 0)), str(c.get("survived", 0)),
                str(c.get("timeout", 0)), str(c.get("no tests", 0)), f"{self.score:.1f}%", f"{self.seconds:.0f}s"]


def scratch_tree(module: str, tests: list[str], into: Path, *, postgres: bool) -> None:
    """A copy of the tree whose pyproject.toml tells mutmut to mutate `module` and run only `tests`."""
    shutil.copytree(ROOT / "flora_mcp", into / "flora_mcp", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", into / "tests", ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    for name in ("README.md", "LICENSE"):
        shutil.copy2(ROOT / name, into / name)
    # The tests run in mutants/ (tests/ is copied there); the OAuth rig is found at <tests>/../clients/oauth.
    for where in (into, into / "mutants"):
        where.mkdir(exist_ok=True)
        (where / "clients").symlink_to(ROOT / "clients", target_is_directory=True)
    engines = '' if postgres else ', "-m", "not postgres"'
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    selection = ", ".join(json.dumps(t) for t in tests)
    pyproject += (
        "\n[tool.mutmut]\n"
        'source_paths = ["flora_mcp"]\n'
        f"only_mutate = [{json.dumps('flora_mcp/' + module)}]\n"
        f"pytest_add_cli_args_test_selection = [{selection}]\n"
        # The suite's own addopts plus no cache and no xdist: mutmut runs pytest in-process, one test file set.
        f'pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "no:xdist", "-x", "-q"{engines}]\n'
        "mutate_only_covered_lines = false\n"
        "use_git_change_detection = false\n"
    )
    (into / "pyproject.toml").write_text(pyproject, encoding="utf-8")


def short(mutant: str) -> str:
    """`flora_mcp.api.retry.xǁRetryPolicyǁdelay__mutmut_19` -> `RetryPolicy.delay#19`."""
    name = mutant.rsplit(".", 1)[-1].replace("xǁ", "").replace("ǁ", ".")
    return name.removeprefix("x_").replace("__mutmut_", "#")


def read_results(tree: Path, module: str, only: set[str] | None = None) -> tuple[dict[str, int], list[str]]:
    """Counts per status and the surviving mutants' names (of `only`'s mutants, when given: a sample)."""
    counts: dict[str, int] = {}
    survivors = []
    for name, code in mutant_codes(tree, module).items():
        if only is not None and name not in only:
            continue
        status = STATUS.get(code, "suspicious") if code is not None else "not checked"
        counts[status] = counts.get(status, 0) + 1
        if status == "survived":
            survivors.append(name)
    return counts, sorted(survivors)


def mutant_codes(tree: Path, module: str) -> dict[str, int | None]:
    meta = json.loads((tree / "mutants" / "flora_mcp" / (module + ".meta")).read_text(encoding="utf-8"))
    codes: dict[str, int | None] = meta["exit_code_by_key"]
    return codes


def run_module(module: str, tests: list[str], *, show: bool, keep: Path | None, postgres: bool = False,
               sample: int | None = None, seed: int = 0) -> Score:
    missing = [t for t in tests if not (ROOT / t).exists()]
    tests = [t for t in tests if t not in missing]
    if missing:
        print(f"  ({module}: no {', '.join(missing)}; running the rest)", flush=True)
    base = Path(tempfile.mkdtemp(prefix="flora-mutation-")) if keep is None else keep / module.replace("/", "_")
    if base.exists() and keep is not None:
        shutil.rmtree(base)
    base.mkdir(parents=True, exist_ok=True)
    try:
        scratch_tree(module, tests, base, postgres=postgres)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FLORA_API_KEY")}
        env["COLUMNS"] = "120"
        started = time.monotonic()
        log = base / "mutmut.log"
        command = ["nice", "-n", "10", PY, "-m", "mutmut", "run", "--max-children", "1"]
        chosen: set[str] | None = None
        if sample is not None:
            # A name no mutant has: mutmut makes the mutants (their names in the module's .meta), finds that none
            # matches and stops, testing nothing; then a random sample of them is tested (a module whose every
            # mutant takes the whole selection would take hours).
            _mutmut(command + ["no-such-mutant"], base, env, log, module, check=False)
            names = sorted(mutant_codes(base, module))
            chosen = set(random.Random(seed).sample(names, min(sample, len(names))))
            command = command + sorted(chosen)
        _mutmut(command, base, env, log, module)
        seconds = time.monotonic() - started
        counts, survivors = read_results(base, module, chosen)
        if show:
            for name in survivors:
                diff = subprocess.run([PY, "-m", "mutmut", "show", name], cwd=base, env=env, capture_output=True,
                                      text=True, check=False).stdout
                changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
                print(f"  {short(name)}:\n    " + "\n    ".join(changed), flush=True)
        return Score(module, counts, survivors, seconds)
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)


def _mutmut(command: list[str], base: Path, env: dict[str, str], log: Path, module: str, *, check: bool = True
            ) -> None:
    with log.open("ab") as out:
        code = subprocess.call(command, cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT)
    if code != 0 and check:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"mutmut failed on {module} (exit {code}):\n{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="paths under flora_mcp/ (default: every module in MODULES)")
    parser.add_argument("--survivors", action="store_true", help="print the diff of every surviving mutant")
    parser.add_argument("--postgres", action="store_true", help="also run the storage tests' PostgreSQL cases")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="test a random sample of N mutants per module (the score is the sample's)")
    parser.add_argument("--seed", type=int, default=0, help="the sample's random seed (default 0)")
    parser.add_argument("--keep", type=Path, help="keep each scratch tree (and mutmut's cache) under this folder")
    # Not mutation.md: that is the write-up of every module's runs, before and after, kept by hand.
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "mutation-latest.md")
    args = parser.parse_args()
    chosen = [m.removeprefix("flora_mcp/") for m in args.modules] or [
        m for m in MODULES if (ROOT / "flora_mcp" / m).exists()]
    unknown = [m for m in chosen if m not in MODULES]
    if unknown:
        raise SystemExit(f"no test selection for {', '.join(unknown)}: add it to MODULES in bench/mutation.py")
    header = ["module", "mutants", "killed", "survived", "timeout", "no tests", "score", "time"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    print(lines[0], flush=True)
    print(lines[1], flush=True)
    for module in chosen:
        score = run_module(module, MODULES[module], show=args.survivors, keep=args.keep,
                           postgres=args.postgres, sample=args.sample, seed=args.seed)
        line = "| " + " | ".join(score.row()) + " |"
        lines.append(line)
        print(line, flush=True)
        if score.survivors:
            print("  survivors: " + " ".join(short(s) for s in score.survivors), flush=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    args.output.write_text(
        f"# Mutation score ({stamp}, mutmut, `bench/mutation.py {' '.join(args.modules)}`)\n\n" + "\n".join(lines)
        + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
