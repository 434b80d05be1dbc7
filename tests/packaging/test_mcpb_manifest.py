"""manifests/mcpb/manifest.json read as data, and the bundle's launcher (manifests/mcpb/server/main.py) as code.

`mcpb validate` (test_mcpb.py) checks the manifest against mcpb's schema; these check that it says the right things
about flora-mcp: the settings a Claude Desktop user sees, and the variables and flags they become.
"""

from __future__ import annotations

import importlib.util
import json
import re
from types import ModuleType
from typing import Any

import pytest

from flora_mcp.cli.main import build_parser
from flora_mcp.config import Settings
from tests.packaging.packaging_support import REPO

BUNDLE = REPO / "manifests" / "mcpb"
SETTINGS_VARIABLES = {f"FLORA_{name.upper()}" for name in Settings.model_fields}
USER_CONFIG = re.compile(r"\$\{user_config\.(\w+)\}")


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((BUNDLE / "manifest.json").read_text())
    return data


@pytest.fixture(scope="module")
def launcher() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mcpb_launcher", BUNDLE / "server" / "main.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_server_is_a_uv_bundle_started_through_its_launcher(manifest: dict[str, Any]) -> None:
    server = manifest["server"]
    assert (manifest["manifest_version"], server["type"]) == ("0.4", "uv")  # uv brings the compiled dependencies
    assert (BUNDLE / server["entry_point"]).is_file()
    config = server["mcp_config"]
    assert config["command"] == "uv" and config["args"][0] == "run"
    assert "--frozen" in config["args"]  # the bundle's uv.lock, never a fresh resolution on the user's machine
    directory = config["args"].index("--directory")
    assert config["args"][directory + 1] == "${__dirname}"
    assert config["args"][directory + 2:] == [server["entry_point"], "--sandbox=${user_config.sandbox}"]
    assert set(manifest["compatibility"]["platforms"]) == {"darwin", "win32", "linux"}
    assert manifest["tools_generated"] is True  # the tools are FLORA's techniques, listed at start-up


def test_the_settings_are_the_key_the_two_caps_and_the_sandbox(manifest: dict[str, Any]) -> None:
    options = manifest["user_config"]
    assert set(options) == {"flora_api_key", "max_cost_per_call", "session_budget", "sandbox"}
    key = options["flora_api_key"]
    assert (key["type"], key["sensitive"]) == ("string", True)  # masked and kept in the OS keychain
    assert key["required"] is False  # the sandbox needs none; without either, flora-mcp says what is missing
    for cap in ("max_cost_per_call", "session_budget"):
        assert (options[cap]["type"], options[cap]["required"], options[cap]["min"]) == ("number", False, 0)
        assert "default" not in options[cap]  # empty means no cap, as without the variable
    assert (options["sandbox"]["type"], options["sandbox"]["default"]) == ("boolean", False)
    env = manifest["server"]["mcp_config"]["env"]
    assert env == {"FLORA_API_KEY": "${user_config.flora_api_key}",
                   "FLORA_MAX_COST_PER_CALL": "${user_config.max_cost_per_call}",
                   "FLORA_SESSION_BUDGET": "${user_config.session_budget}"}
    assert set(env) <= SETTINGS_VARIABLES
    used = set(USER_CONFIG.findall(json.dumps(manifest["server"])))
    assert used == set(options)  # every setting reaches the server, and nothing refers to a missing one


def test_the_launcher_drops_what_claude_desktop_left_unfilled(launcher: ModuleType) -> None:
    environ = {"FLORA_API_KEY": "sk_live_abc", "FLORA_SESSION_BUDGET": "${user_config.session_budget}",
               "FLORA_MAX_COST_PER_CALL": " ", "HOME": "/home/u", "OTHER": "${user_config.x}"}
    launcher.drop_unfilled_settings(environ)
    assert environ == {"FLORA_API_KEY": "sk_live_abc", "HOME": "/home/u", "OTHER": "${user_config.x}"}
    # What is left parses as flora-mcp's settings; the unfilled placeholder would not have.
    assert Settings(session_budget=None).session_budget is None
    with pytest.raises(ValueError, match="session_budget"):
        Settings(session_budget="${user_config.session_budget}")  # type: ignore[arg-type]


@pytest.mark.parametrize(("argv", "sandbox"), [
    (["--sandbox=true"], True), (["--sandbox=false"], False), (["--sandbox=${user_config.sandbox}"], False),
    (["--sandbox=True", "--log-level", "DEBUG"], True),
])
def test_the_launcher_turns_the_sandbox_switch_into_the_flag(launcher: ModuleType, argv: list[str],
                                                             sandbox: bool) -> None:
    args = launcher.flora_mcp_args(argv)
    assert build_parser().parse_args(args).sandbox is sandbox
    assert not any(a.startswith("--sandbox=") for a in args)
