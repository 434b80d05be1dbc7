"""`flora-mcp run` under FLORA_CONFIRM_ABOVE: a y/N prompt at a terminal (a real pty), `--yes` for scripts, and a
refusal saying so when nobody can be asked. Nothing is submitted without a yes."""

from __future__ import annotations

import os
import subprocess
import sys

import anyio
import pytest

from flora_mcp.sandbox import Sandbox
from tests.support import TEST_KEY, posts, server_env

TIMEOUT = 60


def run_cli(sandbox: Sandbox, *args: str, typed: bytes | None) -> subprocess.CompletedProcess[str]:
    """`flora-mcp run ...` against the sandbox; `typed` goes to a terminal on stdin, None: stdin is not a terminal."""
    env = server_env(FLORA_API_KEY=TEST_KEY, FLORA_LOG_LEVEL="WARNING", FLORA_POLL_INTERVAL="0.05",
                     FLORA_CONFIRM_ABOVE="0", COLUMNS="200")
    command = [sys.executable, "-m", "flora_mcp", "run", *args, "--base-url", sandbox.base_url]
    if typed is None:
        return subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)
    primary, secondary = os.openpty()
    try:
        with subprocess.Popen(command, env=env, stdin=secondary, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) as proc:
            os.close(secondary)
            secondary = -1
            os.write(primary, typed)  # waits in the terminal's line buffer until the prompt reads it
            out, err = proc.communicate(timeout=TIMEOUT)
        return subprocess.CompletedProcess(command, proc.returncode, out, err)
    finally:
        os.close(primary)
        if secondary != -1:
            os.close(secondary)


async def cli(sandbox: Sandbox, *args: str, typed: bytes | None) -> subprocess.CompletedProcess[str]:
    done = await anyio.to_thread.run_sync(lambda: run_cli(sandbox, *args, typed=typed))
    assert "Traceback" not in done.stderr, done.stderr
    assert TEST_KEY not in done.stdout + done.stderr
    return done


@pytest.mark.anyio
async def test_y_at_the_prompt_runs_it_once(sandbox: Sandbox) -> None:
    done = await cli(sandbox, "qr-code-generator", "content=asked", typed=b"y\n")
    assert done.returncode == 0, done.stderr
    assert "QR Code Generator (qr-code-generator) is about to run" in done.stderr and "It costs $0.01" in done.stderr
    assert "Run QR Code Generator for $0.01? [y/N]" in done.stderr and "content=asked" in done.stderr
    assert "completed" in done.stdout and posts(sandbox) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("typed", [b"n\n", b"\n", b"whatever\n"], ids=["no", "enter-is-no", "anything-else"])
async def test_anything_but_yes_sends_nothing_and_exits_2(sandbox: Sandbox, typed: bytes) -> None:
    done = await cli(sandbox, "qr-code-generator", "content=declined", typed=typed)
    assert done.returncode == 2
    assert "declined" in done.stdout and "nothing was charged" in done.stdout
    assert posts(sandbox) == 0


@pytest.mark.anyio
async def test_without_a_terminal_it_refuses_and_names_yes(sandbox: Sandbox) -> None:
    done = await cli(sandbox, "qr-code-generator", "content=script", typed=None)
    assert done.returncode == 2 and posts(sandbox) == 0
    assert "confirmation_unavailable" in done.stderr and "pass --yes" in done.stderr


@pytest.mark.anyio
async def test_yes_skips_the_prompt(sandbox: Sandbox) -> None:
    done = await cli(sandbox, "qr-code-generator", "content=scripted", "--yes", "--json", typed=None)
    assert done.returncode == 0, done.stderr
    assert "[y/N]" not in done.stderr and '"status": "completed"' in done.stdout
    assert posts(sandbox) == 1
