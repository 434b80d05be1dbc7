"""uvx, as the client configs in manifests/ run flora-mcp: from the wheel (the published form) and from a checkout.

uv comes from PyPI (the `test` extra). uvx resolves the dependencies from the registry into its cache; it never
downloads a Python here (UV_PYTHON_DOWNLOADS=never): the machine's own 3.11+ serves.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flora_mcp import __version__
from tests.packaging.packaging_support import REPO, Dist, beside_python, client_session, install_env, run, tail

pytestmark = pytest.mark.packaging


def test_uvx_runs_the_wheel_and_prints_the_version(dist: Dist, tmp_path: Path) -> None:
    done = run([beside_python("uvx"), "--from", dist.wheel, "flora-mcp", "--version"], env=install_env(), cwd=tmp_path)
    assert done.returncode == 0, tail(done.stderr)
    assert done.stdout.strip() == f"flora-mcp {__version__}"


def test_uvx_runs_a_checkout_and_rebuilds_it_when_its_code_changes(tmp_path: Path) -> None:
    checkout = tmp_path / "flora-mcp"  # a copy: the test edits it
    for name in ("pyproject.toml", "README.md"):
        checkout.mkdir(exist_ok=True)
        shutil.copy2(REPO / name, checkout / name)
    shutil.copytree(REPO / "flora_mcp", checkout / "flora_mcp", ignore=shutil.ignore_patterns("__pycache__"))
    command = [beside_python("uvx"), "--from", checkout, "flora-mcp", "--version"]
    first = run(command, env=install_env(), cwd=tmp_path)
    assert first.returncode == 0, tail(first.stderr)
    assert first.stdout.strip() == f"flora-mcp {__version__}"
    version_file = checkout / "flora_mcp" / "_version.py"
    version_file.write_text(version_file.read_text().replace(f'"{__version__}"', f'"{__version__}.post7"'))
    second = run(command, env=install_env(), cwd=tmp_path)
    assert second.returncode == 0, tail(second.stderr)
    assert second.stdout.strip() == f"flora-mcp {__version__}.post7"  # [tool.uv] cache-keys: not the old build


@pytest.mark.anyio
async def test_tools_list_through_uvx_from_the_wheel(dist: Dist, tmp_path: Path) -> None:
    args = ["--from", str(dist.wheel), "flora-mcp", "--sandbox"]
    async with client_session(beside_python("uvx"), args, install_env(), tmp_path) as (session, _):
        tools = (await session.list_tools()).tools
    names = {t.name for t in tools}
    assert {"qr-code-generator", "cctv-cam", "flora_get_run"} <= names
    assert all(t.input_schema.get("type") == "object" for t in tools)
