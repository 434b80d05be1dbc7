"""Building the wheel and sdist, finding the tools the `test` extra installs, and talking MCP to what they start."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from flora_mcp import __version__
from tests.support import clean_env

REPO = Path(__file__).resolve().parents[2]
CLIENTS = REPO / "clients"
NODE_BIN = CLIENTS / "node_modules" / ".bin"
DIST_VARIABLE = "FLORA_DIST"
"""A folder holding the wheel and sdist `.ci/run` built; without it the session builds its own."""
DISTRIBUTION = "flora_mcp"

BUILD_TIMEOUT = 300.0
INSTALL_TIMEOUT = 600.0
START_TIMEOUT = 120.0
"""A first start through uv or uvx installs every dependency first."""

# Nothing of this checkout reaches what we start: no PYTHONPATH, no active venv, no FLORA_* or UV_* of the developer's.
CLEAN_ENV = clean_env("PYTHON", "VIRTUAL_ENV", "UV_")


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path


def find_dist(folder: Path) -> Dist | None:
    """The wheel and sdist of this version in `folder`, when there is exactly one of each."""
    wheels = sorted(folder.glob(f"{DISTRIBUTION}-{__version__}-*.whl"))
    sdists = sorted(folder.glob(f"{DISTRIBUTION}-{__version__}.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        return None
    return Dist(wheels[0], sdists[0])


def build_dist(outdir: Path) -> Dist:
    """`python -m build`: the sdist, then the wheel built from that sdist (so the sdist is proven complete)."""
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(outdir), str(REPO)], capture_output=True,
                          text=True, timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, f"python -m build failed:\n{tail(done.stdout)}\n{tail(done.stderr)}"
    found = find_dist(outdir)
    assert found is not None, f"python -m build left {sorted(p.name for p in outdir.iterdir())}"
    return found


def beside_python(name: str) -> Path:
    """A command the `test` extra installed next to the Python running the tests (uv, uvx, hadolint, ...)."""
    path = Path(sys.executable).parent / name
    assert path.exists(), f"{name} is not installed next to {sys.executable}: pip install -e '.[test]'"
    return path


def install_env(**values: str) -> dict[str, str]:
    """The environment of a server we start from an install: clean, uv never downloads a Python, fast polls."""
    return {**CLEAN_ENV, "UV_PYTHON_DOWNLOADS": "never", "FLORA_JOURNAL": ":memory:", "FLORA_CATALOG_CACHE": "off",
            "FLORA_POLL_INTERVAL": "0.05", **values}


def run(command: Sequence[str | Path], *, env: dict[str, str], cwd: Path,
        timeout: float = INSTALL_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def tail(text: str, chars: int = 4000) -> str:
    return text if len(text) <= chars else "..." + text[-chars:]


@asynccontextmanager
async def client_session(command: str | Path, args: Sequence[str], env: dict[str, str],
                        cwd: Path) -> AsyncIterator[tuple[ClientSession, Any]]:
    """The SDK's client on a server started as an MCP client starts one: a subprocess speaking on stdin/stdout."""
    params = StdioServerParameters(command=str(command), args=list(args), env=env, cwd=str(cwd))
    with tempfile.TemporaryFile("w+") as errlog:
        try:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                with anyio.fail_after(START_TIMEOUT):
                    await session.initialize()
                yield session, errlog
        except BaseException as exc:
            # A server that died says why on its stderr; without it a failure reads only "Connection closed".
            exc.add_note(f"server stderr:\n{tail(errlog_text(errlog))}")
            raise


def errlog_text(errlog: Any) -> str:
    errlog.seek(0)
    return str(errlog.read())
