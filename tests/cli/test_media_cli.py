"""The CLI with files: `flora-mcp upload FILE...` and `flora-mcp run ... input_image=./photo.jpg --download DIR`,
as subprocesses, relative paths read from the folder the command runs in."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest
from PIL import Image

from flora_mcp.sandbox import Sandbox
from tests.cli.test_human_cli import Ran
from tests.media_support import jpeg_bytes, write
from tests.support import TEST_KEY, server_env

pytestmark = pytest.mark.anyio


async def cli_in(folder: Path, *args: str, sandbox: Sandbox | None = None) -> Ran:
    env = server_env(FLORA_LOG_LEVEL="WARNING", FLORA_POLL_INTERVAL="0.05")
    if sandbox is not None:
        env.update(FLORA_API_KEY=TEST_KEY, FLORA_BASE_URL=sandbox.base_url)
    with anyio.fail_after(60):
        done = await anyio.run_process([sys.executable, "-m", "flora_mcp", *args], env=env, cwd=folder, check=False)
    ran = Ran(done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in ran.err, ran.err
    return ran


async def test_run_reads_a_relative_path_uploads_it_and_downloads_the_output(tmp_path: Path) -> None:
    write(tmp_path / "photo.jpg", jpeg_bytes(300_000))
    ran = await cli_in(tmp_path, "run", "cctv-cam", "input_image=./photo.jpg", "--sandbox", "--download", "out/")
    assert ran.code == 0, ran.err
    [saved] = list((tmp_path / "out").iterdir())
    assert saved.name.startswith("cctv-cam-run_") and saved.name.endswith("-output_image.png")
    with Image.open(saved) as image:
        assert image.size == (640, 480)
    assert f"Input input_image: {tmp_path / 'photo.jpg'} uploaded as http://127.0.0.1:" in ran.out
    assert f"Saved out/{saved.name}" in ran.out or f"Saved {saved}" in ran.out


async def test_upload_prints_each_files_asset_url(sandbox: Sandbox, tmp_path: Path) -> None:
    write(tmp_path / "a.jpg", jpeg_bytes(300_000))
    write(tmp_path / "b.jpg", jpeg_bytes(300_000))
    ran = await cli_in(tmp_path, "upload", "a.jpg", str(tmp_path / "b.jpg"), sandbox=sandbox)
    assert ran.code == 0, ran.err
    urls = ran.out.split()  # in the order the files were given, though they were uploaded at once
    by_url = {asset.to_json(sandbox.origin)["url"]: asset for asset in sandbox.assets}
    assert len(urls) == len(by_url) == 2
    stored = [sandbox.asset_file(by_url[url].asset_id).read_bytes() for url in urls]  # type: ignore[union-attr]
    assert stored == [(tmp_path / "a.jpg").read_bytes(), (tmp_path / "b.jpg").read_bytes()]
    listed = await cli_in(tmp_path, "upload", "a.jpg", "--json", sandbox=sandbox)
    [upload] = json.loads(listed.out)
    assert upload["source"] == str(tmp_path / "a.jpg") and upload["size_bytes"] == 300_000


async def test_upload_refuses_a_file_it_may_not_read_and_sends_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    write(tmp_path / ".secret.jpg", jpeg_bytes(300_000))
    write(tmp_path / "notes.jpg", b"just text\n" * 10)
    ran = await cli_in(tmp_path, "upload", ".secret.jpg", "notes.jpg", sandbox=sandbox)
    assert ran.code == 2
    assert "hidden" in ran.err and "not a media type" in ran.err
    assert sandbox.requests == []
