"""The suite's own selection rules: every marker the README and CI deselect by is registered, and the fault matrix's
report runs alone.

With `--strict-markers` (pyproject's addopts), `-m "not clients"` stops with "Unknown marker(s)" when `clients` is
registered only by tests/clients/conftest.py and that folder is not collected; `test_print_matrix` once passed only
after the matrix's cells had run before it. Both are checked here in a fresh pytest process, as a user runs them.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import anyio
import pytest

ROOT = Path(__file__).resolve().parents[1]
DESELECTED = ("clients", "packaging", "oauth", "replicas", "postgres", "slow")
"""The markers `-m "not ..."` leaves out, in the README, .ci/run and the marker descriptions."""


async def pytest_in_child(*args: str) -> tuple[int, str]:
    with anyio.fail_after(300):
        done = await anyio.run_process([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
                                       cwd=ROOT, check=False)
    return done.returncode, (done.stdout + done.stderr).decode()


def test_every_deselected_marker_is_registered_in_pyproject() -> None:
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert {line.split(":", 1)[0] for line in markers} >= set(DESELECTED)


@pytest.mark.anyio
async def test_deselecting_by_marker_works_without_collecting_the_folders_that_use_them() -> None:
    expression = " and ".join(f"not {marker}" for marker in DESELECTED)
    code, output = await pytest_in_child("-m", expression, "--collect-only", "tests/test_config.py")
    assert code == 0 and "Unknown marker" not in output, output


@pytest.mark.anyio
@pytest.mark.slow
async def test_the_fault_matrix_report_passes_run_alone() -> None:
    code, output = await pytest_in_child("tests/reliability/test_fault_matrix.py::test_print_matrix")
    assert code == 0 and "1 passed" in output, output[-3000:]
