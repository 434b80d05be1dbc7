"""Serving: the in-process helper (embeddable: no signals, no stdout), create_app, config checks and the CLI."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest
from sandbox_support import loopback_client

from flora_mcp.sandbox import DEFAULT_SANDBOX_KEY, Account, SandboxConfig, create_app, serve_sandbox
from flora_mcp.sandbox.__main__ import parse_config

pytestmark = pytest.mark.anyio


async def test_serve_sandbox_binds_loopback_and_names_its_urls(capfd: pytest.CaptureFixture[str]) -> None:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    async with serve_sandbox() as box:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", box.origin)
        assert box.base_url == f"{box.origin}/api/v1"
        assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
        files_dir = box.state.files_dir
        assert files_dir is not None and (files_dir / "samples" / "street.png").is_file()
        async with loopback_client() as client:
            response = await client.get(
                f"{box.base_url}/workspaces", headers={"Authorization": f"Bearer {box.api_key}"}
            )
            assert response.status_code == 200
    assert not files_dir.exists()
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    out, _ = capfd.readouterr()
    assert out == ""


async def test_serving_leaves_process_logging_alone_and_logs_no_access_lines(caplog: pytest.LogCaptureFixture) -> None:
    access = logging.getLogger("uvicorn.access")
    before = (access.propagate, list(access.handlers), access.level)
    with caplog.at_level(logging.DEBUG):
        async with serve_sandbox() as box, loopback_client() as client:
            assert (await client.get(box.sample_url("logo.png"))).status_code == 200
    assert (access.propagate, list(access.handlers), access.level) == before
    assert [r for r in caplog.records if r.name == "uvicorn.access"] == []


async def test_two_sandboxes_run_side_by_side_inside_a_task_group() -> None:
    results: list[int] = []

    async def use_one() -> None:
        async with serve_sandbox() as box, loopback_client() as client:
            response = await client.get(box.sample_url("logo.png"))
            results.append(response.status_code)

    async with anyio.create_task_group() as group:
        group.start_soon(use_one)
        group.start_soon(use_one)
    assert results == [200, 200]


async def test_a_run_still_working_at_exit_is_cancelled_cleanly() -> None:
    async with serve_sandbox(SandboxConfig(run_delay=30)) as box, loopback_client() as client:
        response = await client.post(
            f"{box.base_url}/techniques/split-text/runs",
            headers={"Authorization": f"Bearer {box.api_key}"},
            json={"inputs": [{"id": "text", "type": "text", "value": "x"}], "mode": "async"},
        )
        assert response.status_code == 200
    assert box.runs[0].status == "running"


async def test_create_app_serves_through_an_asgi_transport_once_its_lifespan_runs() -> None:
    app = create_app(SandboxConfig(keys={"sk_x": Account()}))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://box") as client,
    ):
        response = await client.get("/api/v1/techniques/split-text", headers={"Authorization": "Bearer sk_x"})
        assert response.status_code == 200
        assert response.headers["request-id"].startswith("req_")


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"keys": {}}, id="no-keys"),
        pytest.param({"page_size": 0}, id="page-size"),
        pytest.param({"page_size": 10, "max_page_size": 5}, id="max-below-default"),
    ],
)
def test_config_refuses_nonsense(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SandboxConfig(**options)  # type: ignore[arg-type]


def test_cli_flags_build_the_config() -> None:
    config = parse_config(
        [
            "--port",
            "0",
            "--key",
            "sk_a",
            "--key",
            "sk_b",
            "--credits",
            "2.5",
            "--delay",
            "0.5",
            "--page-size",
            "7",
            "--rate-limit",
            "3",
            "--enable-control",
            "--extra-techniques",
            "120",
        ]
    )
    assert list(config.keys) == ["sk_a", "sk_b"]
    assert config.keys["sk_b"].credits == 2.5
    assert (config.run_delay, config.page_size, config.rate_limit) == (0.5, 7, 3)
    assert config.enable_control and config.extra_techniques == 120
    assert list(parse_config([]).keys) == [DEFAULT_SANDBOX_KEY]
    with pytest.raises(SystemExit):
        parse_config(["--host", "0.0.0.0"])


async def read_all(stream: anyio.abc.ByteReceiveStream) -> bytes:
    chunks = []
    try:
        while True:
            chunks.append(await stream.receive())
    except anyio.EndOfStream:
        return b"".join(chunks)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
async def test_the_cli_prints_its_url_serves_and_exits_cleanly(tmp_path: Path, stop: signal.Signals) -> None:
    command = [sys.executable, "-m", "flora_mcp.sandbox", "--port", "0", "--delay", "0"]
    process = await anyio.open_process(command, env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        assert process.stdout is not None and process.stderr is not None
        with anyio.fail_after(20):
            buffer = b""
            while buffer.count(b"\n") < 2:
                buffer += await process.stdout.receive()
        base_url, key_line = buffer.decode().splitlines()[:2]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v1", base_url)
        assert key_line == f"API key: {DEFAULT_SANDBOX_KEY}"
        assert [path.name.startswith("flora-sandbox-") for path in tmp_path.iterdir()] == [True]
        async with loopback_client() as client:
            headers = {"Authorization": f"Bearer {DEFAULT_SANDBOX_KEY}"}
            page = await client.get(f"{base_url}/techniques", headers=headers)
            assert page.status_code == 200
            sample = await client.get(base_url.replace("/api/v1", "/files/samples/street.png"))
            assert sample.status_code == 200
        process.send_signal(stop)
        with anyio.fail_after(10):
            assert await process.wait() == 0
            errors = (await read_all(process.stderr)).decode()
        assert "Traceback" not in errors
        assert list(tmp_path.iterdir()) == []
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()
