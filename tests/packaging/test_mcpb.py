"""The Claude Desktop bundle: built by manifests/mcpb/build.py with the official mcpb, unpacked, and started the way
Claude Desktop starts it (the command that mcpb's own getMcpConfigForManifest works out, run with uv from PyPI).

What this cannot show: Claude Desktop itself, which does not run on Linux. Its uv runtime is experimental (manifest
0.4); the bundle's `mcp_config` is a plain `uv run` command, so it works the same wherever uv is on PATH.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flora_mcp import __version__
from flora_mcp.sandbox import Account, Sandbox, serve_sandbox
from tests.packaging.packaging_support import (
    CLEAN_ENV,
    CLIENTS,
    REPO,
    Dist,
    beside_python,
    client_session,
    errlog_text,
    run,
    tail,
)
from tests.support import sandbox_config

pytestmark = pytest.mark.packaging

MANIFEST = REPO / "manifests" / "mcpb" / "manifest.json"
# Not the suite's TEST_KEY: this one travels on a command line (the settings), which a failing assertion may print.
BUNDLE_KEY = "sk_sandbox_bundle_settings"
BUILD = REPO / "manifests" / "mcpb" / "build.py"


def node_env(node_bin: Path) -> dict[str, str]:
    return {**CLEAN_ENV, "PATH": f"{node_bin}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}


def mcpb(node_bin: Path, *args: str | Path, cwd: Path) -> Any:
    return run([node_bin / "mcpb", *args], env=node_env(node_bin), cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def bundle(dist: Dist, node_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """flora-mcp.mcpb, built from the session's wheel by the build script, as a release would build it."""
    out = tmp_path_factory.mktemp("mcpb") / "flora-mcp.mcpb"
    done = run([sys.executable, BUILD, "--wheel", dist.wheel, "--out", out], env=node_env(node_bin), cwd=REPO)
    assert done.returncode == 0, f"build.py failed:\n{tail(done.stdout)}\n{tail(done.stderr)}"
    assert done.stdout.strip() == str(out)
    return out


@pytest.fixture(scope="module")
def unpacked(bundle: Path, node_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle unpacked by `mcpb unpack`, as Claude Desktop unpacks it into its extensions folder."""
    folder = tmp_path_factory.mktemp("extensions") / "flora-mcp"
    done = mcpb(node_bin, "unpack", bundle, folder, cwd=bundle.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def test_the_bundle_holds_the_manifest_the_launcher_the_tested_wheel_and_a_lock(unpacked: Path, dist: Dist) -> None:
    files = {p.relative_to(unpacked).as_posix() for p in unpacked.rglob("*") if p.is_file()}
    wheel = f"wheels/{dist.wheel.name}"
    assert files == {"manifest.json", "server/main.py", "pyproject.toml", "uv.lock", wheel}
    assert hashlib.sha256((unpacked / wheel).read_bytes()).digest() == hashlib.sha256(dist.wheel.read_bytes()).digest()
    assert json.loads((unpacked / "manifest.json").read_text()) == json.loads(MANIFEST.read_text())
    assert (unpacked / "server" / "main.py").read_bytes() == (REPO / "manifests/mcpb/server/main.py").read_bytes()
    project = tomllib.loads((unpacked / "pyproject.toml").read_text())
    assert project["project"]["dependencies"] == [f"flora-mcp=={__version__}"]
    assert project["tool"]["uv"]["sources"]["flora-mcp"] == {"path": wheel}
    lock = tomllib.loads((unpacked / "uv.lock").read_text())
    locked = {p["name"]: p for p in lock["package"]}
    assert locked["flora-mcp"]["version"] == __version__ and locked["flora-mcp"]["source"] == {"path": wheel}
    assert {"mcp", "pydantic-core", "pillow"} <= set(locked)
    # Universal: the compiled dependencies are locked for the bundle's every platform, not just this machine's.
    pillow = {w["url"].rsplit("/", 1)[-1] for w in locked["pillow"]["wheels"]}
    assert all(any(tag in name for name in pillow) for tag in ("macosx", "win_amd64", "manylinux"))


def test_mcpb_validate_rejects_a_manifest_without_its_author(node_bin: Path, tmp_path: Path) -> None:
    broken = {k: v for k, v in json.loads(MANIFEST.read_text()).items() if k != "author"}
    (tmp_path / "manifest.json").write_text(json.dumps(broken))
    done = mcpb(node_bin, "validate", tmp_path / "manifest.json", cwd=tmp_path)
    assert done.returncode == 1 and "author" in done.stdout


def claude_desktop_command(node_bin: Path, unpacked: Path, user_config: dict[str, Any],
                           home: Path) -> dict[str, Any]:
    """{command, args, env} as Claude Desktop builds it for this bundle and these settings."""
    done = run([node_bin / "node", CLIENTS / "mcpb_config.mjs", "--dir", unpacked, "--user-config",
                json.dumps(user_config), "--home", home], env=node_env(node_bin), cwd=CLIENTS)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = json.loads(done.stdout)
    return config


def desktop_env(config: dict[str, Any], home: Path, **machine: str) -> dict[str, str]:
    """What the server's process gets: a plain user environment, with uv on PATH, plus the manifest's env."""
    cache = run([beside_python("uv"), "cache", "dir"], env=CLEAN_ENV, cwd=home).stdout.strip()
    env = {"PATH": f"{beside_python('uv').parent}{os.pathsep}/usr/bin:/bin", "HOME": str(home),
           "UV_CACHE_DIR": cache, "UV_PYTHON_DOWNLOADS": "never", **machine}
    env.update(config["env"])
    return env


@pytest.mark.anyio
async def test_claude_desktop_starts_the_unpacked_bundle_with_the_sandbox_on(node_bin: Path, unpacked: Path,
                                                                           tmp_path: Path) -> None:
    config = claude_desktop_command(node_bin, unpacked, {"sandbox": True}, tmp_path)
    assert config["command"] == "uv" and config["args"][-1] == "--sandbox=true"
    assert str(unpacked) in config["args"]
    # The key and caps were left empty: their placeholders reach the process unreplaced, and must not break it.
    assert config["env"]["FLORA_SESSION_BUDGET"] == "${user_config.session_budget}"
    env = desktop_env(config, tmp_path)
    async with client_session(config["command"], config["args"], env, tmp_path) as (session, errlog):
        names = {t.name for t in (await session.list_tools()).tools}
        assert {"qr-code-generator", "flora_get_run"} <= names
        result = await session.call_tool("qr-code-generator", {"content": "from Claude Desktop's bundle"})
        assert result.is_error is False, result.content
        assert (result.structured_content or {})["status"] == "completed"
        assert "embedded FLORA sandbox" in errlog_text(errlog)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve_sandbox(sandbox_config(keys={BUNDLE_KEY: Account()})) as box:
        yield box


@pytest.mark.anyio
async def test_the_key_and_the_per_call_cap_from_the_settings_reach_the_server(node_bin: Path, unpacked: Path,
                                                                              sandbox: Sandbox,
                                                                              tmp_path: Path) -> None:
    settings = {"flora_api_key": BUNDLE_KEY, "max_cost_per_call": 0.0001, "sandbox": False}
    config = claude_desktop_command(node_bin, unpacked, settings, tmp_path)
    assert config["args"][-1] == "--sandbox=false"
    assert (config["env"]["FLORA_API_KEY"], config["env"]["FLORA_MAX_COST_PER_CALL"]) == (BUNDLE_KEY, "0.0001")
    # FLORA_BASE_URL is no bundle setting: here it points the real-FLORA mode at the test's sandbox.
    env = desktop_env(config, tmp_path, FLORA_BASE_URL=sandbox.base_url, FLORA_JOURNAL=":memory:")
    async with client_session(config["command"], config["args"], env, tmp_path) as (session, errlog):
        names = {t.name for t in (await session.list_tools()).tools}  # the sandbox lists only for BUNDLE_KEY
        assert "qr-code-generator" in names
        refused = await session.call_tool("qr-code-generator", {"content": "too dear"})
        logged = errlog_text(errlog)
    assert "FLORA_MAX_COST_PER_CALL" in json.dumps(refused.structured_content or refused.model_dump(mode="json"))
    assert sandbox.runs == []  # refused before anything was sent
    assert sandbox.requests_for("list_techniques")  # the key was accepted
    assert BUNDLE_KEY not in logged
