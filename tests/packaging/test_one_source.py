"""The package's name and version are written once (pyproject.toml, flora_mcp/_version.py); every manifest agrees.

The manifests must hold literal values (registries and Claude Desktop read the files as they are), so a release
bumps flora_mcp/_version.py and then these tests name each file that still says the old version.
"""

from __future__ import annotations

import importlib.util
import json
import re
import tomllib
from types import ModuleType
from typing import Any

import pytest
import yaml

from flora_mcp import __version__
from tests.packaging.packaging_support import REPO

MANIFESTS = REPO / "manifests"


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())
    return data


@pytest.fixture(scope="module")
def project(pyproject: dict[str, Any]) -> dict[str, Any]:
    table: dict[str, Any] = pyproject["project"]
    return table


def test_the_version_has_one_source(pyproject: dict[str, Any], project: dict[str, Any]) -> None:
    assert "version" not in project and project["dynamic"] == ["version"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "flora_mcp/_version.py"
    namespace: dict[str, Any] = {}
    exec((REPO / "flora_mcp" / "_version.py").read_text(), namespace)  # our own file: read it as Python does
    assert namespace["__version__"] == __version__


def test_the_registry_entry_names_the_package_and_its_version(project: dict[str, Any]) -> None:
    entry = json.loads((MANIFESTS / "registry" / "server.json").read_text())
    assert entry["name"].endswith(f"/{project['name']}") and entry["version"] == __version__
    (package,) = entry["packages"]
    assert (package["identifier"], package["version"]) == (project["name"], __version__)


def test_the_bundle_manifest_says_what_pyproject_says(project: dict[str, Any]) -> None:
    manifest = json.loads((MANIFESTS / "mcpb" / "manifest.json").read_text())
    assert (manifest["name"], manifest["version"]) == (project["name"], __version__)
    assert manifest["description"] == project["description"]
    assert manifest["license"] == project["license"]
    assert manifest["author"] == {"name": project["authors"][0]["name"]}
    assert manifest["compatibility"]["runtimes"]["python"] == project["requires-python"]


def test_the_bundle_build_reads_the_same_name_and_version(project: dict[str, Any]) -> None:
    spec = importlib.util.spec_from_file_location("mcpb_build", MANIFESTS / "mcpb" / "build.py")
    assert spec and spec.loader
    build: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    meta = build.project()
    assert (meta["name"], meta["version"], meta["requires-python"]) == (project["name"], __version__,
                                                                        project["requires-python"])
    pyproject = tomllib.loads(build.bundle_pyproject(meta, REPO / f"flora_mcp-{__version__}-py3-none-any.whl"))
    assert pyproject["project"]["dependencies"] == [f"{project['name']}=={__version__}"]


def test_the_kubernetes_image_is_this_version(project: dict[str, Any]) -> None:
    deployment = yaml.safe_load((MANIFESTS / "kubernetes" / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    repository, _, tag = container["image"].rpartition(":")
    assert repository.endswith(f"/{project['name']}") and tag == __version__


def test_the_client_configs_run_the_console_script(project: dict[str, Any]) -> None:
    (script,) = project["scripts"]
    assert script == project["name"]  # so `uvx flora-mcp` finds the command of the package of the same name
    for path in sorted(MANIFESTS.rglob("*.json")):
        if {"registry", "mcpb"} & set(path.parts):
            continue
        servers = json.loads(path.read_text()).get("mcpServers") or json.loads(path.read_text())["servers"]
        server = servers["flora"]
        if "command" in server:
            assert script in [server["command"], *server.get("args", [])], path


def test_the_docs_name_this_version_wherever_they_name_one() -> None:
    for doc in (REPO / "README.md", MANIFESTS / "README.md"):
        named = re.findall(r"flora_mcp-(\d[\w.]*)-py3", doc.read_text())
        assert named and set(named) == {__version__}, doc
