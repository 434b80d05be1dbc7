"""The packaging fixtures: the wheel and sdist (built once per session), a fresh venv with the wheel, the npm tools.

`.ci/run` builds dist/ once with `python -m build` and sets FLORA_DIST to it; a developer's plain `pytest` builds into
a temporary folder instead. Tests marked `packaging` install from the registries and take tens of seconds:
`pytest -m "not packaging"` leaves them out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.packaging_support import (
    CLEAN_ENV,
    CLIENTS,
    DIST_VARIABLE,
    INSTALL_TIMEOUT,
    NODE_BIN,
    Dist,
    build_dist,
    find_dist,
    run,
    tail,
)

NPM_MISSING = 3
"""clients/install.sh's exit status when npm is not on PATH."""


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """The wheel and sdist of this checkout: the ones `.ci/run` built, or built now."""
    folder = os.environ.get(DIST_VARIABLE)
    if folder:
        found = find_dist(Path(folder))
        if found is None:
            pytest.fail(f"{DIST_VARIABLE}={folder} does not hold exactly one wheel and one sdist of this version",
                        pytrace=False)
        return found
    return build_dist(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def wheel_venv(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel and its dependencies installed by pip, and nothing else."""
    venv = tmp_path_factory.mktemp("wheel-venv") / "venv"
    scratch = venv.parent
    base = getattr(sys, "_base_executable", sys.executable)  # the interpreter itself, not the tests' venv
    done = run([base, "-m", "venv", venv], env=CLEAN_ENV, cwd=scratch)
    assert done.returncode == 0, done.stderr
    done = run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", dist.wheel], env=CLEAN_ENV, cwd=scratch)
    assert done.returncode == 0, f"pip install of the wheel failed:\n{tail(done.stdout)}\n{tail(done.stderr)}"
    return venv


@pytest.fixture(scope="session")
def node_bin() -> Path:
    """clients/node_modules/.bin with mcpb and Node 22, installed by clients/install.sh when not there yet."""
    proc = subprocess.run(["bash", str(CLIENTS / "install.sh")], capture_output=True, text=True,
                          timeout=INSTALL_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode == NPM_MISSING and os.environ.get("CI", "").lower() != "true":
        pytest.skip("npm is not installed, so mcpb (clients/install.sh) cannot be installed")
    assert proc.returncode == 0, f"clients/install.sh failed:\n{tail(proc.stdout)}\n{tail(proc.stderr)}"
    return NODE_BIN
