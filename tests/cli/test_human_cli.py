"""The human CLI driven as a subprocess: `techniques`, `describe` and `run`, their output and their exit codes.

Most runs point the CLI at the test's own sandbox (`--base-url`), so a test can see every request the CLI made; the
`--sandbox` tests use the CLI's embedded sandbox, as a person trying flora-mcp would.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
import zxingcpp
from PIL import Image

from flora_mcp.cli.human import UsageError, exit_code, parse_inputs
from flora_mcp.core.results import ToolResult
from flora_mcp.sandbox import Sandbox
from tests.support import TEST_KEY, posts, server_env


class Ran:
    """What one CLI process did."""

    def __init__(self, code: int, stdout: bytes, stderr: bytes) -> None:
        self.code = code
        self.out = stdout.decode()
        self.err = stderr.decode()


async def cli(*args: str, key: str | None = None) -> Ran:
    """`python -m flora_mcp ARGS` with a clean FLORA environment; the journal and catalog cache stay off disk."""
    env = server_env(FLORA_LOG_LEVEL="WARNING", FLORA_POLL_INTERVAL="0.05")
    if key is not None:
        env["FLORA_API_KEY"] = key
    with anyio.fail_after(60):
        done = await anyio.run_process([sys.executable, "-m", "flora_mcp", *args], env=env, check=False)
    ran = Ran(done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in ran.err, ran.err
    assert TEST_KEY not in ran.out + ran.err
    return ran


async def against(sandbox: Sandbox, *args: str) -> Ran:
    """The CLI talking to the test's sandbox."""
    return await cli(*args, "--base-url", sandbox.base_url, key=TEST_KEY)


async def together(*calls: Any) -> list[Ran]:
    """Several CLI processes at once (each one spends most of its second starting Python)."""
    results: list[Ran | None] = [None] * len(calls)

    async def one(index: int) -> None:
        results[index] = await calls[index]

    async with anyio.create_task_group() as tg:
        for index in range(len(calls)):
            tg.start_soon(one, index)
    return [r for r in results if r is not None]


PAIRS = [
    pytest.param(["content=hello"], {"content": "hello"}, id="one pair"),
    pytest.param(["a=1", "a=2", "a=3"], {"a": ["1", "2", "3"]}, id="a repeated key is a list"),
    pytest.param(["text=x=y", "empty="], {"text": "x=y", "empty": ""}, id="only the first = splits"),
    pytest.param([], {}, id="no inputs"),
]


@pytest.mark.parametrize(("pairs", "expected"), PAIRS)
def test_key_value_pairs_become_tool_arguments(pairs: list[str], expected: dict[str, object]) -> None:
    assert parse_inputs(pairs) == expected


@pytest.mark.parametrize("bad", ["no-equals", "=value", " =x"])
def test_a_pair_without_a_key_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_inputs([bad])


@pytest.mark.anyio
async def test_techniques_lists_every_technique_with_its_tool_inputs_and_cost() -> None:
    ran = await cli("techniques", "--sandbox")
    assert ran.code == 0, ran.err
    assert "11 FLORA techniques" in ran.out
    rows = {line.split("│")[2].strip(): line for line in ran.out.splitlines() if line.count("│") == 5}
    assert "CCTV Cam" in rows["cctv-cam"] and "input_image (URL)" in rows["cctv-cam"]
    assert rows["cctv-cam"].rstrip(" │").endswith("$0.05")
    assert "grade? (text)" in rows["color-grade-image"] and "$0.02" in rows["color-grade-image"]
    assert "Soft Focus" in rows["soft-focus"]  # the technique without a slug has a tool too
    assert len(rows) == 11


@pytest.mark.anyio
async def test_describe_shows_inputs_schema_cost_and_an_example(sandbox: Sandbox) -> None:
    ran = await against(sandbox, "describe", "Change Image Aspect Ratio")
    assert ran.code == 0, ran.err
    assert "change-image-ar" in ran.out and "$0.02 per run" in ran.out
    schema = json.loads(ran.out[ran.out.index("{"):ran.out.rindex("}") + 1])
    assert schema["required"] == ["input_image", "aspect_ratio"] and schema["additionalProperties"] is False
    assert "Run it: flora-mcp run change-image-ar input_image=URL aspect_ratio=..." in ran.out


@pytest.mark.anyio
async def test_describe_or_run_of_an_unknown_technique_exits_2(sandbox: Sandbox) -> None:
    described, ran = await together(against(sandbox, "describe", "nope"), against(sandbox, "run", "nope", "a=b"))
    for result in (described, ran):
        assert result.code == 2 and "no technique matches 'nope'" in result.err
    assert posts(sandbox) == 0


@pytest.mark.anyio
async def test_run_with_the_embedded_sandbox_downloads_a_real_file(tmp_path: Path) -> None:
    ran = await cli("run", "qr-code-generator", "content=hello from the cli", "--sandbox", "--download",
                    str(tmp_path / "out"))
    assert ran.code == 0, ran.err
    [saved] = list((tmp_path / "out").iterdir())
    assert saved.suffix == ".png" and f"Saved {saved}" in ran.out
    [code] = zxingcpp.read_barcodes(Image.open(io.BytesIO(saved.read_bytes())))
    assert code.text == "hello from the cli"
    assert "completed" in ran.out and "Charged: $0.01" in ran.out


@pytest.mark.anyio
async def test_run_json_prints_the_tool_result_and_what_was_saved(sandbox: Sandbox, tmp_path: Path) -> None:
    ran = await against(sandbox, "run", "split-text", "text=one\ntwo", "--json", "--download", str(tmp_path))
    assert ran.code == 0, ran.err
    body = json.loads(ran.out)
    assert body["tool"] == "split-text" and body["status"] == "completed" and body["charged_cost"] == 0
    assert [Path(p).read_text() for p in body["saved"]] == ["one", "two"]
    assert posts(sandbox) == 1


RUN_FAILURES = [
    pytest.param(["qr-code-generator", "content=a", "content=b"], 2, "content: must be of type string",
                 id="a repeated key for a single input"),
    pytest.param(["qr-code-generator", "content"], 2, "inputs are KEY=VALUE", id="a malformed pair"),
    pytest.param(["cctv-cam", "input_image=https://example.com/a.png", "--max-cost-per-call", "0.01"], 2,
                 "costs $0.05, above FLORA_MAX_COST_PER_CALL of $0.01", id="refused by a cost cap"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("args", "code", "says"), RUN_FAILURES)
async def test_a_run_refused_before_sending_exits_2_and_posts_nothing(sandbox: Sandbox, args: list[str], code: int,
                                                                      says: str) -> None:
    ran = await against(sandbox, "run", *args)
    assert ran.code == code and says in ran.err, ran.err
    assert posts(sandbox) == 0


@pytest.mark.anyio
async def test_a_failed_run_exits_1_with_its_error_and_run_id(sandbox: Sandbox) -> None:
    ran = await against(sandbox, "run", "flaky-provider", "prompt=please fail")
    assert ran.code == 1
    assert "failed (provider_error)" in ran.err and "Run id: run_" in ran.err
    assert posts(sandbox) == 1


@pytest.mark.anyio
async def test_an_api_error_exits_1(sandbox: Sandbox) -> None:
    sandbox.faults.inject(route="create_technique_run", kind="status", status=402, code="insufficient_credits",
                          message="no credits left")
    ran = await against(sandbox, "run", "qr-code-generator", "content=x")
    assert ran.code == 1 and "insufficient_credits" in ran.err and "no credits left" in ran.err


@pytest.mark.anyio
async def test_usage_errors_exit_2() -> None:
    no_key, bad_flag = await together(cli("techniques"), cli("run", "--no-such-flag", "--sandbox"))
    assert no_key.code == 2 and "FLORA_API_KEY is not set" in no_key.err
    assert bad_flag.code == 2 and "usage:" in bad_flag.err


EXIT_CODES = [
    pytest.param(ToolResult(tool="t", status="completed"), 0, id="completed"),
    pytest.param(ToolResult(tool="t", status="invalid", error_code="invalid_arguments"), 2, id="invalid arguments"),
    pytest.param(ToolResult(tool="t", status="invalid", error_code="cost_cap_exceeded"), 2, id="cost cap"),
    pytest.param(ToolResult(tool="t", status="invalid", error_code="internal_error"), 1, id="internal error"),
    pytest.param(ToolResult(tool="t", status="failed", error_code="provider_error"), 1, id="run failed"),
    pytest.param(ToolResult(tool="t", status="error", error_code="rate_limited"), 1, id="api error"),
    pytest.param(ToolResult(tool="t", status="running", run_id="run_1"), 1, id="still running"),
    pytest.param(ToolResult(tool="t", status="timed_out", run_id="run_1"), 1, id="timed out"),
]


@pytest.mark.parametrize(("result", "code"), EXIT_CODES)
def test_exit_code_of_each_outcome(result: ToolResult, code: int) -> None:
    assert exit_code(result) == code
