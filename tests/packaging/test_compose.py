"""manifests/compose/compose.yaml (three replicas, PostgreSQL, nginx) holds together, though no Docker runs here: its
command parses with the real CLI, its variables are real settings, its database URL names its database service, and
its nginx config passes the real `nginx -t` (Debian's nginx, as the multi-replica tests use it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.packaging.test_manifests import MANIFESTS, SETTINGS_VARIABLES, assert_real_flags
from tests.replicas.replicas_support import nginx_binary

COMPOSE = MANIFESTS / "compose" / "compose.yaml"
TOP_LEVEL = {"name", "services", "configs", "volumes"}
"""The compose-spec top-level keys this file uses (`version` is obsolete in the spec)."""


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_it_has_three_stateless_replicas_postgres_and_nginx_and_nothing_unknown(compose: dict[str, Any]) -> None:
    assert set(compose) <= TOP_LEVEL
    services = compose["services"]
    assert set(services) == {"flora-mcp", "postgres", "nginx"}
    app = services["flora-mcp"]
    assert app["deploy"]["replicas"] == 3
    args = assert_real_flags(app["command"])
    assert (args.transport, args.stateless, args.host) == ("http", True, "0.0.0.0")
    assert "ports" not in app  # reached through nginx only
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert app["read_only"] is True and "/tmp" in app["tmpfs"]


def test_the_replicas_environment_is_real_settings_and_required_secrets_are_required(compose: dict[str, Any]) -> None:
    env = compose["services"]["flora-mcp"]["environment"]
    assert set(env) <= SETTINGS_VARIABLES
    for secret in ("FLORA_API_KEY", "FLORA_MCP_TOKENS"):  # it refuses to start off loopback without auth
        assert re.fullmatch(r"\$\{" + secret + r":\?[^}]+\}", env[secret]), env[secret]
    assert not any("sk_live_" in str(value) for value in env.values())  # no key in the file, only its variable


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?message}` with `env`, as `docker compose` would."""
    def one(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if name in env and env[name]:
            return env[name]
        assert op != ":?", f"{name} is required: {rest}"
        return rest if op == ":-" else ""

    return re.sub(r"\$\{([A-Za-z_]\w*)(:[-?])?([^}]*)\}", one, value)


def test_the_database_url_names_the_postgres_service_its_user_database_and_password(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = {"POSTGRES_PASSWORD": "pw0123", "FLORA_API_KEY": "k", "FLORA_MCP_TOKENS": "t"}
    url = urlsplit(interpolate(services["flora-mcp"]["environment"]["FLORA_DATABASE_URL"], env))
    pg = {k: interpolate(v, env) for k, v in services["postgres"]["environment"].items()}
    assert url.scheme == "postgresql" and url.hostname == "postgres" and url.port == 5432
    assert (url.username, url.password, url.path) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"],
                                                      "/" + pg["POSTGRES_DB"])
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD is required"):
        interpolate(services["postgres"]["environment"]["POSTGRES_PASSWORD"], {})
    healthcheck = services["postgres"]["healthcheck"]["test"]
    assert healthcheck[:2] == ["CMD", "pg_isready"] and pg["POSTGRES_USER"] in healthcheck
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])


def nginx_conf(compose: dict[str, Any]) -> str:
    [mounted] = compose["services"]["nginx"]["configs"]
    assert mounted["target"].startswith("/etc/nginx/conf.d/")  # included inside the http block
    content: str = compose["configs"][mounted["source"]]["content"]
    return content


def test_nginx_proxies_every_path_to_the_replicas_port_unbuffered(compose: dict[str, Any]) -> None:
    conf = nginx_conf(compose)
    port = int(assert_real_flags(compose["services"]["flora-mcp"]["command"]).port)
    assert re.search(rf"server flora-mcp:{port}\b", conf)
    [published] = compose["services"]["nginx"]["ports"]
    assert re.search(rf"listen {published.split(':')[1]};", conf)
    assert "location / {" in conf and "proxy_buffering off;" in conf  # SSE answers go out as they come
    assert "proxy_set_header Host $http_host;" in conf  # the replicas check the Host they are given


def test_the_nginx_config_passes_nginx_t(compose: dict[str, Any], tmp_path: Path) -> None:
    # Docker's DNS name of the replicas does not resolve here: the same config with a loopback address instead.
    conf = nginx_conf(compose).replace("flora-mcp:", "127.0.0.1:")
    full = tmp_path / "nginx.conf"
    full.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\nhttp {{\n{conf}\n}}\n")
    done = subprocess.run([nginx_binary(), "-t", "-p", str(tmp_path), "-c", str(full)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    broken = tmp_path / "broken.conf"
    broken.write_text(full.read_text().replace("proxy_buffering off;", "proxy_buffering of;"))
    bad = subprocess.run([nginx_binary(), "-t", "-p", str(tmp_path), "-c", str(broken)], capture_output=True,
                         text=True, timeout=30, check=False)
    assert bad.returncode != 0  # the check bites
