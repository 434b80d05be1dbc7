"""The wheel and sdist that `python -m build` makes: what they hold, and the wheel installed alone, serving MCP."""

from __future__ import annotations

import email
import json
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest

from flora_mcp import __version__
from flora_mcp.sandbox import SAMPLE_NAMES
from tests.packaging.packaging_support import REPO, Dist, client_session, errlog_text, install_env, run

pytestmark = pytest.mark.packaging

PACKAGE = REPO / "flora_mcp"
DIST_INFO = f"flora_mcp-{__version__}.dist-info"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def checkout_files() -> set[str]:
    """The files of flora_mcp/ in this checkout, as the wheel names them (bytecode left out, as .gitignore says)."""
    return {p.relative_to(REPO).as_posix() for p in PACKAGE.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def wheel_names(dist: Dist) -> set[str]:
    with zipfile.ZipFile(dist.wheel) as wheel:
        return set(wheel.namelist())


def test_the_wheel_holds_the_package_its_type_marker_and_the_sandbox_and_nothing_else(dist: Dist) -> None:
    names = wheel_names(dist)
    package = {n for n in names if n.startswith("flora_mcp/")}
    assert package == checkout_files()  # every module, py.typed and the READMEs; a stale dist/ fails here too
    assert "flora_mcp/py.typed" in package
    # The sandbox draws its sample images at start-up from this module (there are no image files to forget).
    assert {"flora_mcp/sandbox/_samples.py", "flora_mcp/sandbox/__main__.py", "flora_mcp/sandbox/README.md"} <= package
    assert names - package == {f"{DIST_INFO}/{n}" for n in ("METADATA", "WHEEL", "RECORD", "entry_points.txt",
                                                                 "licenses/LICENSE")}
    assert not any(n.startswith("tests/") or "/tests/" in n or n.endswith(".pyc") for n in names)


def test_the_wheel_metadata_names_the_one_version_and_the_console_script(dist: Dist) -> None:
    assert dist.wheel.name == f"flora_mcp-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(dist.wheel) as wheel:
        metadata = email.message_from_bytes(wheel.read(f"{DIST_INFO}/METADATA"))
        entry_points = wheel.read(f"{DIST_INFO}/entry_points.txt").decode()
    assert (metadata["Name"], metadata["Version"], metadata["Requires-Python"]) == ("flora-mcp", __version__, ">=3.11")
    assert any(r.startswith("mcp") for r in metadata.get_all("Requires-Dist", []))
    assert "[console_scripts]\nflora-mcp = flora_mcp.cli:main" in entry_points


def test_the_sdist_holds_what_builds_the_wheel_and_no_tests_or_clients(dist: Dist) -> None:
    top = f"flora_mcp-{__version__}"
    with tarfile.open(dist.sdist) as sdist:
        names = {m.name.removeprefix(f"{top}/") for m in sdist.getmembers() if m.isfile()}
    package = {n for n in names if n.startswith("flora_mcp/")}
    assert package == {n for n in wheel_names(dist) if n.startswith("flora_mcp/")}
    # hatchling adds .gitignore
    assert names - package == {"pyproject.toml", "README.md", "LICENSE", "PKG-INFO", ".gitignore"}


def test_the_installed_wheel_imports_from_its_venv_not_from_the_checkout(wheel_venv: Path, tmp_path: Path) -> None:
    probe = ("import json, sys, importlib.metadata as m, importlib.resources as r, flora_mcp; "
             "print(json.dumps({'file': flora_mcp.__file__, 'path': sys.path, 'version': m.version('flora-mcp'), "
             "'typed': r.files('flora_mcp').joinpath('py.typed').is_file()}))")
    done = run([wheel_venv / "bin" / "python", "-c", probe], env=install_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert Path(found["file"]).is_relative_to(wheel_venv)
    assert not any(entry and Path(entry).resolve().is_relative_to(REPO) for entry in found["path"])
    assert (found["version"], found["typed"]) == (__version__, True)
    version = run([wheel_venv / "bin" / "flora-mcp", "--version"], env=install_env(), cwd=tmp_path)
    assert (version.returncode, version.stdout.strip()) == (0, f"flora-mcp {__version__}")


@pytest.mark.anyio
async def test_the_installed_wheel_serves_the_sandbox_over_stdio_to_the_sdk_client(wheel_venv: Path,
                                                                                    tmp_path: Path) -> None:
    async with client_session(wheel_venv / "bin" / "flora-mcp", ["--sandbox"], install_env(), tmp_path) as (session,
                                                                                                           errlog):
        names = {t.name for t in (await session.list_tools()).tools}
        assert {"qr-code-generator", "cctv-cam", "flora_get_run"} <= names
        qr = await session.call_tool("qr-code-generator", {"content": "from the wheel"})
        assert qr.is_error is False, qr.content
        output = (qr.structured_content or {})["outputs"][0]["url"]
        assert (qr.structured_content or {})["status"] == "completed"
        origin = httpx.URL(output).copy_with(path="/", query=None).__str__().rstrip("/")
        async with httpx.AsyncClient() as http:
            for name in SAMPLE_NAMES:
                sample = await http.get(f"{origin}/files/samples/{name}")
                assert sample.status_code == 200 and sample.content.startswith(PNG_SIGNATURE), name
        cctv = await session.call_tool("cctv-cam", {"input_image": f"{origin}/files/samples/{SAMPLE_NAMES[0]}"})
        assert cctv.is_error is False, cctv.content
        assert (cctv.structured_content or {})["status"] == "completed"
        assert "Traceback" not in errlog_text(errlog)
