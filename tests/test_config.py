"""One API-key check with one message: the library, the hosted server and the command all say the same thing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flora_mcp.cli.main import build_parser
from flora_mcp.config import MISSING_API_KEY, ConfigurationError, Settings
from flora_mcp.core.startup import StartupError
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.hosted import serve_http
from tests.support import server_env

NO_KEY = Settings(api_key=None, journal=":memory:", catalog_cache="off")


def test_the_message_says_what_is_missing_where_to_get_it_and_the_sandbox() -> None:
    with pytest.raises(ConfigurationError) as raised:
        NO_KEY.require_api_key()
    assert raised.value.message == MISSING_API_KEY and raised.value.code == "configuration_error"
    assert "FLORA_API_KEY is not set" in MISSING_API_KEY and "Settings > API" in MISSING_API_KEY
    assert "--sandbox" in MISSING_API_KEY
    assert Settings(api_key="sk_live_x0x0x0x0").require_api_key() == "sk_live_x0x0x0x0"
    assert Settings(api_key="").api_key_value() is None
    with pytest.raises(ConfigurationError):
        Settings(api_key="").require_api_key()


def test_the_library_says_it() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Toolkit(NO_KEY)
    assert raised.value.message == MISSING_API_KEY


@pytest.mark.anyio
async def test_the_hosted_server_says_it_before_binding() -> None:
    with pytest.raises(StartupError) as raised:
        await serve_http(NO_KEY, build_parser().parse_args(["--transport", "http", "--port", "0"]))
    assert str(raised.value) == MISSING_API_KEY


def test_the_command_says_it() -> None:
    done = subprocess.run([sys.executable, "-m", "flora_mcp", "techniques"], env=server_env(), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"flora-mcp: {MISSING_API_KEY}\n"
