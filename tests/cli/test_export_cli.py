"""`flora-mcp export-tools` as a pipeline's build step runs it: a subprocess whose stdout is the definitions' JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from flora_mcp.config import Settings
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.integrations.export import FORMATS, validate_export
from flora_mcp.sandbox import Sandbox
from tests.support import server_env, settings_for


def export_tools(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "flora_mcp", "export-tools", *args], env=server_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def exports() -> Iterator[dict[str, subprocess.Popen[str]]]:
    # Started together: each process spends most of its time importing and starting its sandbox.
    with ExitStack() as stack:
        yield {fmt: stack.enter_context(export_tools("--sandbox", "--format", fmt)) for fmt in FORMATS}


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", FORMATS)
async def test_export_tools_prints_valid_definitions_identical_to_the_toolkits(
    exports: dict[str, subprocess.Popen[str]], sandbox: Sandbox, fmt: str
) -> None:
    stdout, stderr = exports[fmt].communicate(timeout=60)
    assert exports[fmt].returncode == 0, stderr
    definitions = json.loads(stdout)
    assert validate_export(fmt, definitions) == []
    # The CLI's sandbox has this sandbox's catalog, so with the CLI's default settings the library exports the same.
    defaults = {name: Settings.model_fields[name].default for name in ("max_wait", "tools_mode")}
    async with Toolkit(settings_for(sandbox, **defaults)) as toolkit:
        assert definitions == toolkit.export_tools(fmt)


def test_export_tools_without_a_key_or_the_sandbox_says_how_to_get_one() -> None:
    process = export_tools("--format", "openai")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and stdout == ""
    assert "FLORA_API_KEY is not set" in stderr and "--sandbox" in stderr


def test_export_tools_refuses_an_unknown_format() -> None:
    process = export_tools("--sandbox", "--format", "claude")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and stdout == ""
    assert "invalid choice: 'claude'" in stderr
