"""The examples run as a user runs them: `python examples/<loop>.py` in a clean environment, the model scripted."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import anyio
import httpx
import pytest
import zxingcpp
from PIL import Image

from flora_mcp.sandbox import Sandbox
from tests.support import TEST_KEY, clean_env

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = ["anthropic_loop.py", "openai_loop.py"]
# No FLORA key and no model keys: each example must start its own sandbox and use its scripted model.
CLEAN_ENV = clean_env("ANTHROPIC_", "OPENAI_")
OUTPUT_URL = r"http://127\.0\.0\.1:(\d+)/files/runs/(run_[0-9a-f]+)/{}\.png"
QR_URL = re.compile(OUTPUT_URL.format("qr_code"))
CCTV_URL = re.compile(OUTPUT_URL.format("output_image"))


def tool_calls(stdout: str) -> list[tuple[str, dict[str, object]]]:
    """The `-> tool {arguments}` lines an example prints, parsed."""
    return [(name, json.loads(args)) for name, args in re.findall(r"^-> (\S+) (.*)$", stdout, re.MULTILINE)]


def final_answer(stdout: str) -> str:
    """The model's last message: what the example prints after a blank line."""
    return stdout.rstrip("\n").rsplit("\n\n", 1)[-1]


@pytest.fixture(scope="module")
def offline_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, subprocess.Popen[str]]]:
    # Started together: each spends seconds waiting on its runs' estimated time, so side by side they take half as long.
    cwd = tmp_path_factory.mktemp("examples")  # not the repository: the examples must not depend on the cwd
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(
                subprocess.Popen([sys.executable, str(EXAMPLES_DIR / name)], cwd=cwd, env=CLEAN_ENV,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            )
            for name in EXAMPLES
        }


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_turns_a_qr_code_into_a_cctv_still_and_reports_the_url_and_cost(
    offline_runs: dict[str, subprocess.Popen[str]], example: str
) -> None:
    process = offline_runs[example]
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    qr_url, cctv_url = QR_URL.search(stdout), CCTV_URL.search(stdout)
    assert qr_url and cctv_url, stdout
    assert tool_calls(stdout) == [
        ("qr-code-generator", {"content": "https://flora.ai"}),
        ("cctv-cam", {"input_image": qr_url.group(0)}),  # the second call works on the first call's real output
    ]
    assert qr_url.group(1) == cctv_url.group(1) and qr_url.group(2) != cctv_url.group(2)  # one sandbox, two runs
    assert final_answer(stdout) == (
        f"Done: the QR code, as a CCTV still: {cctv_url.group(0)}\n"
        "Cost: $0.06 (qr-code-generator $0.01, cctv-cam $0.05)"
    )
    assert "100.0% completed" in stderr and "Traceback" not in stderr


async def image_at(http: httpx.AsyncClient, url: str) -> Image.Image:
    response = await http.get(url)
    response.raise_for_status()
    return Image.open(io.BytesIO(response.content)).convert("RGB")


@pytest.mark.anyio
async def test_examples_use_the_flora_in_the_environment_when_a_key_is_set(sandbox: Sandbox) -> None:
    env = {**CLEAN_ENV, "FLORA_API_KEY": TEST_KEY, "FLORA_BASE_URL": sandbox.base_url, "FLORA_JOURNAL": ":memory:",
           "FLORA_POLL_INTERVAL": "0.1"}
    done: dict[str, subprocess.CompletedProcess[bytes]] = {}

    async def run(name: str) -> None:
        done[name] = await anyio.run_process([sys.executable, str(EXAMPLES_DIR / name)], env=env, check=False)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            for name in EXAMPLES:
                group.start_soon(run, name)
    runs = {run.run_id: run for run in sandbox.runs}
    assert len(runs) == 2 * len(EXAMPLES)  # no run started twice, none of the examples' own sandboxes used
    async with httpx.AsyncClient() as http:
        for name, process in done.items():
            stdout, stderr = process.stdout.decode(), process.stderr.decode()
            assert process.returncode == 0, stderr
            assert TEST_KEY not in stdout + stderr
            qr_url, cctv_url = QR_URL.search(stdout), CCTV_URL.search(stdout)
            assert qr_url and cctv_url and qr_url.group(0).startswith(sandbox.origin), name
            assert runs[qr_url.group(2)].inputs == {"content": "https://flora.ai"}
            assert runs[cctv_url.group(2)].inputs == {"input_image": qr_url.group(0)}
            [qr_code] = zxingcpp.read_barcodes(await image_at(http, qr_url.group(0)))
            assert qr_code.text == "https://flora.ai"
            red, green, blue = (await image_at(http, cctv_url.group(0))).split()
            assert red.tobytes() == green.tobytes() == blue.tobytes()  # grayscale, as a CCTV still is
