"""The manifests checked by the tools their ecosystems use: kubernetes-validate, hadolint, the MCP registry's schema.

Each check is shown to bite: a manifest broken on purpose fails it.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.packaging.packaging_support import REPO, beside_python

MANIFESTS = REPO / "manifests"
KUBERNETES_VERSION = "1.34"
"""The Kubernetes release the manifests are validated against (kubernetes-validate ships its API schemas)."""
SCHEMALESS_KINDS = {"Kustomization"}
"""kustomize's own file, no Kubernetes API object: test_manifests.py checks what it lists."""


def kubernetes_objects() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, doc) for path in sorted((MANIFESTS / "kubernetes").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize(("name", "doc"), [
    pytest.param(name, doc, id=f"{name}:{doc['kind']}") for name, doc in kubernetes_objects()
    if doc["kind"] not in SCHEMALESS_KINDS])
def test_every_kubernetes_object_passes_kubernetes_validate_strict(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_only_the_kustomization_has_no_kubernetes_schema() -> None:
    for _, doc in kubernetes_objects():
        if doc["kind"] in SCHEMALESS_KINDS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kubernetes_validate_rejects_a_misspelled_field_and_a_wrong_type() -> None:
    (deployment,) = [doc for _, doc in kubernetes_objects() if doc["kind"] == "Deployment"]
    misspelled = copy.deepcopy(deployment)
    misspelled["spec"]["replica"] = misspelled["spec"].pop("replicas")
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    for broken in (misspelled, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def hadolint(dockerfile: str) -> tuple[int, list[dict[str, Any]]]:
    done = subprocess.run([str(beside_python("hadolint")), "--format", "json", "--failure-threshold", "style", "-"],
                          input=dockerfile, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, json.loads(done.stdout or "[]")


def test_the_dockerfile_passes_hadolint_with_no_finding_at_all() -> None:
    code, findings = hadolint((REPO / "Dockerfile").read_text())
    assert findings == [] and code == 0


def test_hadolint_flags_an_unpinned_base_and_an_unpinned_apt_install() -> None:
    code, findings = hadolint("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    assert code != 0
    assert {"DL3007", "DL3008"} <= {f["code"] for f in findings}


# The MCP registry's server.json --------------------------------------------------------------------------------------

_INPUT = {
    "type": "object",
    "properties": {
        "description": {"type": "string"},
        "isRequired": {"type": "boolean"},
        "format": {"enum": ["string", "number", "boolean", "filepath"]},
        "value": {"type": "string"},
        "isSecret": {"type": "boolean"},
        "default": {"type": "string"},
        "placeholder": {"type": "string"},
        "choices": {"type": "array", "items": {"type": "string"}},
    },
}
_URL = {"type": "string", "pattern": r"^(https?://\S+|\{[a-zA-Z_][a-zA-Z0-9_]*\}\S*)$"}
_TRANSPORT = {"oneOf": [
    {"type": "object", "required": ["type"], "properties": {"type": {"const": "stdio"}}},
    {"type": "object", "required": ["type", "url"],
     "properties": {"type": {"enum": ["streamable-http", "sse"]}, "url": _URL,
                    "headers": {"type": "array", "items": {"$ref": "#/definitions/keyValue"}}}},
]}
_EXACT_VERSION = {"type": "string", "minLength": 1, "maxLength": 255,
                  "not": {"anyOf": [{"const": "latest"}, {"pattern": r"^[\^~<>=]|(^|\.)[x*](\.|$)"}]}}
REGISTRY_RULES: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "definitions": {"keyValue": {"allOf": [_INPUT, {"type": "object", "required": ["name"],
                                                    "properties": {"name": {"type": "string"}}}]}},
    "type": "object",
    "required": ["name", "description", "version"],
    "properties": {
        "$schema": {"type": "string", "format": "uri"},
        "name": {"type": "string", "minLength": 3, "maxLength": 200, "pattern": r"^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$"},
        "title": {"type": "string", "minLength": 1, "maxLength": 100},
        "description": {"type": "string", "minLength": 1, "maxLength": 100},
        "version": _EXACT_VERSION,
        "websiteUrl": {"type": "string", "format": "uri"},
        "repository": {"type": "object", "required": ["url", "source"]},
        "packages": {"type": "array", "items": {
            "type": "object",
            "required": ["registryType", "identifier", "transport"],
            "properties": {
                "registryType": {"type": "string"},
                "registryBaseUrl": {"type": "string", "format": "uri"},
                "identifier": {"type": "string", "minLength": 1},
                "version": _EXACT_VERSION,
                "fileSha256": {"type": "string", "pattern": "^[a-f0-9]{64}$"},
                "runtimeHint": {"type": "string"},
                "transport": _TRANSPORT,
                "environmentVariables": {"type": "array", "items": {"$ref": "#/definitions/keyValue"}},
            },
            # Packages from a registry name an exact version; an mcpb download names its hash.
            "allOf": [
                {"if": {"properties": {"registryType": {"enum": ["npm", "pypi", "nuget"]}}},
                 "then": {"required": ["version"]}},
                {"if": {"properties": {"registryType": {"const": "mcpb"}}}, "then": {"required": ["fileSha256"]}},
            ],
        }},
        "remotes": {"type": "array", "items": _TRANSPORT},
    },
}
"""The rules of the MCP registry's server.schema.json (2025-12-11) that an entry like ours can break, restated from
the published schema (modelcontextprotocol/registry, docs/reference/server-json/) and its documented rule that a
version is exact, never a range or `latest`. The schema file itself is not copied into this repository."""
SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"


@pytest.fixture(scope="module")
def entry() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((MANIFESTS / "registry" / "server.json").read_text())
    return data


def registry_errors(entry: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(REGISTRY_RULES, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    return [error.message for error in validator.iter_errors(entry)]


def test_the_registry_entry_follows_the_schema_it_names(entry: dict[str, Any]) -> None:
    jsonschema.Draft7Validator.check_schema(REGISTRY_RULES)
    assert entry["$schema"] == SCHEMA_URL
    assert registry_errors(entry) == []


def _set(path: str, value: Any) -> Any:
    def change(entry: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = entry
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is KeyError:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return change


@pytest.mark.parametrize("change", [
    pytest.param(_set("name", "flora-mcp"), id="name-without-namespace"),
    pytest.param(_set("description", "x" * 101), id="description-too-long"),
    pytest.param(_set("version", "^0.1.0"), id="server-version-range"),
    pytest.param(_set("packages.0.version", "latest"), id="package-version-latest"),
    pytest.param(_set("packages.0.version", KeyError), id="pypi-package-without-version"),
    pytest.param(_set("packages.0.transport", {"type": "websocket"}), id="unknown-transport"),
    pytest.param(_set("packages.0.environmentVariables.0.isSecret", "yes"), id="secret-flag-not-boolean"),
    pytest.param(_set("packages.0.environmentVariables.3.format", "float"), id="unknown-input-format"),
])
def test_the_registry_rules_reject_a_broken_entry(entry: dict[str, Any], change: Any) -> None:
    broken = copy.deepcopy(entry)
    change(broken)
    assert registry_errors(broken)


def test_the_rules_hold_for_a_documented_remote_entry() -> None:
    """A streamable-http remote with a templated URL, as the 2025-12-11 changelog shows, passes; a bare path not."""
    remote = {"name": "io.github.example/remote", "description": "d", "version": "1.0.0",
              "remotes": [{"type": "streamable-http", "url": "{baseUrl}/mcp"}]}
    assert registry_errors(remote) == []
    remote["remotes"][0]["url"] = "/mcp"
    assert registry_errors(remote)


def test_every_kubernetes_file_is_validated_here() -> None:
    files = {path.name for path in (MANIFESTS / "kubernetes").iterdir()}
    assert files == {name for name, _ in kubernetes_objects()}
    assert all(Path(MANIFESTS / "kubernetes" / name).suffix == ".yaml" for name in files)
