"""Every file under manifests/ parses, and names the real command, real flags and real environment variables."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from flora_mcp import __version__
from flora_mcp.cli.main import build_parser
from flora_mcp.config import Settings
from flora_mcp.hosted import DRAIN_TIMEOUT, is_loopback

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
SETTINGS_VARIABLES = {f"FLORA_{name.upper()}" for name in Settings.model_fields}
# What a client keeps for a hosted server: its copy of one of the server's FLORA_MCP_TOKENS.
CLIENT_VARIABLES = {"FLORA_MCP_TOKEN"}
PLACEHOLDER = re.compile(r"\$\{(?:env:|input:)?([A-Za-z_][\w-]*)(?::-[^}]*)?\}")

CLIENT_CONFIGS = [
    pytest.param("claude-desktop/claude_desktop_config.json", "mcpServers", id="claude-desktop"),
    pytest.param("claude-desktop/from-checkout/claude_desktop_config.json", "mcpServers",
                 id="claude-desktop-from-checkout"),
    pytest.param("claude-code/.mcp.json", "mcpServers", id="claude-code"),
    pytest.param("claude-code/hosted/.mcp.json", "mcpServers", id="claude-code-hosted"),
    pytest.param("cursor/mcp.json", "mcpServers", id="cursor"),
    pytest.param("cursor/hosted/mcp.json", "mcpServers", id="cursor-hosted"),
    pytest.param("vscode/mcp.json", "servers", id="vscode"),
    pytest.param("vscode/hosted/mcp.json", "servers", id="vscode-hosted"),
    pytest.param("claude-code/hosted-oauth/.mcp.json", "mcpServers", id="claude-code-hosted-oauth"),
    pytest.param("cursor/hosted-oauth/mcp.json", "mcpServers", id="cursor-hosted-oauth"),
    pytest.param("vscode/hosted-oauth/mcp.json", "servers", id="vscode-hosted-oauth"),
]


def load(path: Path) -> Any:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return list(yaml.safe_load_all(path.read_text()))


def assert_real_flags(args: list[str]) -> Any:
    """Parse with the real CLI parser: an unknown flag or a bad value fails the test, not just exits."""
    try:
        return build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"flora-mcp does not accept these arguments: {args}")


# The Claude Desktop bundle's files: tests/packaging/test_mcpb_manifest.py and test_mcpb.py check them.
BUNDLE_FILES = {"mcpb/manifest.json", "mcpb/build.py", "mcpb/server/main.py"}


def test_every_manifest_parses_and_every_one_is_checked_here() -> None:
    files = sorted(p for p in MANIFESTS.rglob("*") if p.is_file() and p.name != "README.md"
                   and "__pycache__" not in p.parts)
    assert files
    bundle = {str(p.relative_to(MANIFESTS)) for p in files if p.parts[len(MANIFESTS.parts)] == "mcpb"}
    assert bundle == BUNDLE_FILES
    for path in files:
        if str(path.relative_to(MANIFESTS)) in BUNDLE_FILES:
            continue
        assert path.suffix in (".json", ".yaml"), path
        assert load(path)
    listed = {p.values[0] for p in CLIENT_CONFIGS}
    clients = {str(p.relative_to(MANIFESTS)) for p in files if p.suffix == ".json"
               and not {"registry", "mcpb"} & set(p.parts)}
    assert clients == listed


def flora_mcp_command(command: list[str]) -> list[str]:
    """`flora-mcp ARGS` from `uvx flora-mcp ARGS` (published) or `uvx --from CHECKOUT flora-mcp ARGS`."""
    if command[0] != "uvx":
        return command
    if command[1] == "--from":
        source = command[2]
        assert source.startswith("/") and "flora-mcp" in source, source  # an absolute checkout path to replace
        return command[3:]
    return command[1:]


@pytest.mark.parametrize(("relative", "servers_key"), CLIENT_CONFIGS)
def test_client_configs_start_the_real_command_with_real_variables(relative: str, servers_key: str) -> None:
    config = load(MANIFESTS / relative)
    servers = config[servers_key]
    assert list(servers) == ["flora"]
    server = servers["flora"]
    inputs = {i["id"] for i in config.get("inputs", [])}
    if "url" in server and "hosted-oauth" in relative:
        # The client signs the person in from the server's 401 and metadata: nothing secret in the file.
        assert server["url"].startswith("https://") and server["url"].endswith("/mcp")
        assert server.get("type", "http") == "http" and "headers" not in server
        values = []
    elif "url" in server:
        assert server["url"].startswith("https://") and server["url"].endswith("/mcp")
        assert server.get("type", "http") == "http"
        assert re.fullmatch(r"Bearer \$\{[^}]+\}", server["headers"]["Authorization"])
        values = list(server["headers"].values())
    else:
        if servers_key == "servers":
            assert server["type"] == "stdio"  # VS Code names the transport
        command = flora_mcp_command([server["command"], *server.get("args", [])])
        assert command[0] == "flora-mcp"
        assert_real_flags(command[1:])
        assert set(server["env"]) <= SETTINGS_VARIABLES
        assert "FLORA_API_KEY" in server["env"]
        values = list(server["env"].values())
    for value in values:
        for name in PLACEHOLDER.findall(value):
            assert name in SETTINGS_VARIABLES | CLIENT_VARIABLES | inputs, name
    assert "sk_live_" not in json.dumps(config)


def test_the_registry_entry_describes_the_pypi_package_run_with_uvx() -> None:
    entry = load(MANIFESTS / "registry" / "server.json")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert re.fullmatch(r"https://static\.modelcontextprotocol\.io/schemas/2025-\d\d-\d\d/server\.schema\.json",
                        entry["$schema"])
    assert re.fullmatch(r"io\.github\.[A-Za-z0-9-]+/flora-mcp", entry["name"])
    assert 1 <= len(entry["description"]) <= 100
    assert project["dynamic"] == ["version"]  # one source: flora_mcp/_version.py
    assert entry["version"] == __version__
    (package,) = entry["packages"]
    assert (package["registryType"], package["identifier"], package["version"]) == ("pypi", project["name"],
                                                                                    __version__)
    assert package["runtimeHint"] == "uvx" and package["transport"] == {"type": "stdio"}
    assert "flora-mcp" in project["scripts"]
    variables = {v["name"]: v for v in package["environmentVariables"]}
    assert set(variables) <= SETTINGS_VARIABLES
    assert variables["FLORA_API_KEY"]["isSecret"] is True and variables["FLORA_API_KEY"]["isRequired"] is True
    for variable in variables.values():
        assert not {"is_secret", "is_required"} & set(variable)  # the 2025-09 schemas are camelCase
        if "choices" in variable:
            field = Settings.model_fields[variable["name"].removeprefix("FLORA_").lower()]
            assert set(variable["choices"]) == set(field.annotation.__args__)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def kube() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object under manifests/kubernetes, by kind (one of each)."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted((MANIFESTS / "kubernetes").glob("*.yaml")):
        for doc in load(path):
            assert doc["kind"] not in objects
            objects[doc["kind"]] = doc
    return objects


def container_of(kube: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (container,) = kube["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def test_kubernetes_has_deployment_service_secret_template_and_autoscaler(kube: dict[str, dict[str, Any]]) -> None:
    assert {"Deployment", "Service", "Secret", "HorizontalPodAutoscaler"} <= set(kube)
    kustomization = kube["Kustomization"]
    files = {p.name for p in (MANIFESTS / "kubernetes").glob("*.yaml")} - {"kustomization.yaml", "secret.yaml"}
    assert set(kustomization["resources"]) == files  # the Secret template is never applied over real keys


def test_the_deployment_serves_stateless_http_with_auth_and_real_variables(kube: dict[str, dict[str, Any]]) -> None:
    container = container_of(kube)
    args = assert_real_flags(container["args"])
    assert (args.transport, args.stateless) == ("http", True)  # several replicas behind one Service
    assert not is_loopback(args.host)
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert port == args.port
    secret = kube["Secret"]
    assert {s["secretRef"]["name"] for s in container["envFrom"]} == {secret["metadata"]["name"]}
    assert set(secret["stringData"]) <= SETTINGS_VARIABLES
    assert "FLORA_MCP_TOKENS" in secret["stringData"] or args.per_user_keys  # it refuses to start otherwise
    assert all(value.startswith("REPLACE_ME") for value in secret["stringData"].values())
    assert {e["name"] for e in container["env"]} <= SETTINGS_VARIABLES
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert Path(env["FLORA_JOURNAL"]).parent.as_posix() in mounts  # writable with a read-only root filesystem


def test_the_deployment_probes_health_and_readiness_and_runs_unprivileged(kube: dict[str, dict[str, Any]]) -> None:
    container = container_of(kube)
    pod = kube["Deployment"]["spec"]["template"]["spec"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    dockerfile_user = re.search(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert dockerfile_user and pod["securityContext"]["runAsUser"] == int(dockerfile_user.group(1)) != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    pre_stop = float(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + DRAIN_TIMEOUT + 5


def test_the_service_and_autoscaler_point_at_the_deployment(kube: dict[str, dict[str, Any]]) -> None:
    deployment = kube["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = kube["Service"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"http"}
    target = kube["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert kube["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2


def test_replicas_share_a_database_from_the_secret_and_readiness_includes_it(kube: dict[str, dict[str, Any]]) -> None:
    container = container_of(kube)
    secret = kube["Secret"]["stringData"]
    assert {"FLORA_DATABASE_URL", "FLORA_WEBHOOK_SECRET"} <= set(secret)  # the URL carries the password: a secret
    assert "FLORA_DATABASE_URL" not in {e["name"] for e in container["env"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"  # 503 while the database does not answer
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"  # a database outage restarts nothing
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["FLORA_PUBLIC_URL"].startswith("https://") and env["FLORA_PUBLIC_URL"].endswith("/mcp")
    assert assert_real_flags(container["args"]).stateless
    assert "sessionAffinity" not in kube["Service"]["spec"]  # stateless: no affinity needed


def test_the_sticky_session_notes_say_when_affinity_is_needed() -> None:
    for name in ("deployment.yaml", "service.yaml"):
        text = (MANIFESTS / "kubernetes" / name).read_text()
        assert "sessionAffinity: ClientIP" in text and "--stateless" in text, name
        assert "SSE" in text, name
