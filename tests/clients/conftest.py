"""Fixtures for the real-client tests: install the clients once per session, and a hosted server to point them at.

Every test here carries the `clients` marker; `pytest -m "not clients"` leaves them out. They never skip silently:
when the clients are not installed the session installs them with clients/install.sh (npm, into clients/), and
without npm they fail under CI=true and skip elsewhere, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.clients_support import INSTALL, NODE_BIN, NodeTools, hosted_server, tail

INSTALL_TIMEOUT = 600.0
NPM_MISSING = 3
"""install.sh's exit status when npm is not on PATH."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.clients)


def _missing_npm(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the real-client tests must run in CI)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_tools(tmp_path_factory: pytest.TempPathFactory) -> NodeTools:
    """The clients under clients/node_modules, installed by clients/install.sh if they are not there yet."""
    if shutil.which("bash") is None:
        _missing_npm("bash is needed to run clients/install.sh")
    proc = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
                          stdin=subprocess.DEVNULL, check=False)
    if proc.returncode == NPM_MISSING:
        _missing_npm("npm is not installed, so the real MCP clients (clients/install.sh) cannot be installed")
    if proc.returncode != 0:
        pytest.fail(f"clients/install.sh failed with {proc.returncode}:\n{tail(proc.stdout)}\n{tail(proc.stderr)}",
                    pytrace=False)
    home = tmp_path_factory.mktemp("node-home")  # the Inspector keeps catalogs and OAuth state under HOME
    env = {**os.environ, "PATH": f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(home),
           "NO_COLOR": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("FLORA_")}
    return NodeTools(env=env)


@pytest.fixture(scope="session")
def hosted_url(node_tools: NodeTools) -> Iterator[str]:
    """A stateful streamable-HTTP flora-mcp with the embedded sandbox, shared by the HTTP tests of the session."""
    with hosted_server() as url:
        yield url
