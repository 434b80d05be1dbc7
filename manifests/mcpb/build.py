"""Build flora-mcp.mcpb, the Claude Desktop bundle: `python manifests/mcpb/build.py [--wheel W] [--out FILE]`.

The bundle is a `uv` server (manifest_version 0.4): Claude Desktop gets Python and the dependencies with uv, so the
compiled ones (pydantic-core, Pillow) come as the wheels of the user's own platform. It holds:

    manifest.json        manifests/mcpb/manifest.json, whose name and version must match pyproject.toml
    server/main.py       the entry point: turns the settings the user filled in into flora-mcp's flags
    pyproject.toml       written here: one dependency, flora-mcp, from the wheel below
    uv.lock              written here by `uv lock`: every dependency pinned, for every platform
    wheels/flora_mcp-*.whl

Then `mcpb validate` and `mcpb pack`, from `@anthropic-ai/mcpb` pinned under clients/ (`clients/install.sh`).
Needs `build` and `uv` (the `test` extra) and the package registry, for the wheel's build and the lock.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NODE_BIN = ROOT / "clients" / "node_modules" / ".bin"
BUNDLE_NAME = "flora-mcp.mcpb"


class BuildError(Exception):
    """A step of the build failed; the message says which and why."""


def project() -> dict[str, Any]:
    """pyproject.toml's [project] table, with the version read from flora_mcp/_version.py (its one source)."""
    table: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    tree = ast.parse((ROOT / "flora_mcp" / "_version.py").read_text())
    versions = [node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
                and isinstance(node.value, ast.Constant)]
    if len(versions) != 1:
        raise BuildError("flora_mcp/_version.py must assign __version__ exactly once, to a string")
    return {**table, "version": versions[0]}


def checked_manifest(meta: dict[str, Any]) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((HERE / "manifest.json").read_text())
    for field in ("name", "version"):
        if manifest[field] != meta[field]:
            raise BuildError(f"manifests/mcpb/manifest.json has {field} {manifest[field]!r}, pyproject.toml "
                             f"{meta[field]!r}: change the manifest to match")
    return manifest


def bundle_pyproject(meta: dict[str, Any], wheel: Path) -> str:
    return (
        "# Written by manifests/mcpb/build.py: the environment uv makes for the bundle, flora-mcp from its wheel.\n"
        "[project]\n"
        f'name = "{meta["name"]}-bundle"\n'
        f'version = "{meta["version"]}"\n'
        f'requires-python = "{meta["requires-python"]}"\n'
        f'dependencies = ["{meta["name"]}=={meta["version"]}"]\n'
        "\n[tool.uv]\npackage = false\n"
        f'\n[tool.uv.sources]\n{meta["name"]} = {{ path = "wheels/{wheel.name}" }}\n'
    )


def run(command: list[str], what: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise BuildError(f"{what} failed ({done.returncode}): {' '.join(command)}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def tool(name: str) -> str:
    """A tool installed beside this Python (the project's venv), else from PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise BuildError(f"{name} is not installed: pip install -e '.[test]'")
    return found


def build_wheel(outdir: Path) -> Path:
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir), str(ROOT)], "building the wheel")
    (wheel,) = outdir.glob("*.whl")
    return wheel


def stage(meta: dict[str, Any], wheel: Path, staging: Path) -> None:
    """Lay out the bundle's files in `staging`."""
    (staging / "server").mkdir(parents=True)
    (staging / "wheels").mkdir()
    (staging / "manifest.json").write_text(json.dumps(checked_manifest(meta), indent=2) + "\n")
    shutil.copy2(HERE / "server" / "main.py", staging / "server" / "main.py")
    shutil.copy2(wheel, staging / "wheels" / wheel.name)
    (staging / "pyproject.toml").write_text(bundle_pyproject(meta, wheel))
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    run([tool("uv"), "lock", "--quiet", "--directory", str(staging)], "uv lock", env)


def mcpb(*args: str) -> str:
    command = NODE_BIN / "mcpb"
    if not command.exists():
        raise BuildError("mcpb is not installed: run clients/install.sh")
    env = {**os.environ, "PATH": f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    return run([str(command), *args], f"mcpb {args[0]}", env)


def build(out: Path, wheel: Path | None = None) -> Path:
    """Build the bundle at `out` from `wheel` (built from this checkout when None); returns `out`."""
    meta = project()
    with tempfile.TemporaryDirectory(prefix="flora-mcpb-") as scratch:
        work = Path(scratch)
        if wheel is None:
            wheel = build_wheel(work / "dist")
        if not wheel.name.startswith(f"{meta['name'].replace('-', '_')}-{meta['version']}-"):
            raise BuildError(f"{wheel.name} is not the wheel of {meta['name']} {meta['version']}")
        staging = work / "bundle"
        stage(meta, wheel, staging)
        mcpb("validate", str(staging / "manifest.json"))
        out.parent.mkdir(parents=True, exist_ok=True)
        mcpb("pack", str(staging), str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python manifests/mcpb/build.py", description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", type=Path, help="the flora-mcp wheel to bundle (default: build one)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / BUNDLE_NAME, help=f"default dist/{BUNDLE_NAME}")
    args = parser.parse_args(argv)
    try:
        out = build(args.out.resolve(), args.wheel.resolve() if args.wheel else None)
    except BuildError as exc:
        sys.stderr.write(f"build.py: {exc}\n")
        return 1
    sys.stdout.write(f"{out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
