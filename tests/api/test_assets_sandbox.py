"""`Assets` against the sandbox over loopback: the direct and signed paths end to end, the stored bytes, progress,
the keyless bucket, expiry and retry, faults at each step, workspaces, and an uploaded file as a run's input."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from flora_mcp.api.assets import Assets
from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import ServerError, UploadError
from flora_mcp.api.models import Asset
from flora_mcp.api.retry import RetryPolicy
from flora_mcp.sandbox import Account, Sandbox, SandboxConfig, serve_sandbox
from tests.media_support import MB, jpeg_bytes, mp4_bytes, png_bytes, write
from tests.support import TEST_KEY, sandbox_config

pytestmark = pytest.mark.anyio

WS = "ws_sandbox"
FAST_RETRIES = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.002)


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    async def __call__(self, sent: int, total: int) -> None:
        self.calls.append((sent, total))


def assets_for(box: Sandbox) -> tuple[FloraClient, Assets]:
    client = FloraClient(api_key=TEST_KEY, base_url=box.base_url, retry=FAST_RETRIES, timeout=10)
    return client, Assets(client, poll_interval=0.01, ready_timeout=10)


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    async with serve_sandbox(sandbox_config(asset_processing_delay=0.05)) as sandbox:
        yield sandbox


@pytest.fixture
async def assets(box: Sandbox) -> AsyncIterator[Assets]:
    client, uploader = assets_for(box)
    async with client:
        yield uploader


def stored(box: Sandbox, asset: Asset) -> bytes:
    path = box.asset_file(asset.asset_id)
    assert path is not None, asset
    return path.read_bytes()


async def test_a_3_mb_photo_goes_the_direct_way_and_is_stored_byte_for_byte(box: Sandbox, assets: Assets,
                                                                             tmp_path: Path) -> None:
    photo = write(tmp_path / "desk photo.jpg", jpeg_bytes(3 * MB))
    progress = Progress()
    asset = await assets.upload_file(photo, workspace_id=WS, progress=progress)
    assert asset.is_ready and asset.uploaded_via == "direct"
    assert (asset.content_type, asset.size_bytes, asset.name) == ("image/jpeg", 3 * MB, "desk photo.jpg")
    assert stored(box, asset) == photo.read_bytes()
    [create] = box.requests_for("create_asset")
    assert create.api_key == TEST_KEY and create.idempotency_key
    assert box.requests_for("bucket_upload") == []
    sent = [call[0] for call in progress.calls]
    assert sent == sorted(set(sent)) and sent[-1] == 3 * MB and len(sent) >= 3  # one report per MiB at least


async def test_an_8_mb_video_goes_the_signed_way_without_the_key_at_the_bucket(box: Sandbox, assets: Assets,
                                                                               tmp_path: Path) -> None:
    video = write(tmp_path / "clip.mp4", mp4_bytes(8 * MB))
    progress = Progress()
    asset = await assets.upload_file(video, workspace_id=WS, progress=progress)
    assert asset.is_ready and asset.uploaded_via == "signed_url"
    assert (asset.content_type, asset.size_bytes) == ("video/mp4", 8 * MB)
    assert stored(box, asset) == video.read_bytes()
    [reserve] = box.requests_for("create_asset")
    assert reserve.body == {"source": "signed-url", "workspace_id": WS, "content_type": "video/mp4",
                            "file_name": "clip.mp4"}
    [upload] = box.requests_for("bucket_upload")
    assert upload.api_key is None and upload.idempotency_key is None
    [complete] = box.requests_for("complete_asset")
    assert complete.idempotency_key and complete.idempotency_key != reserve.idempotency_key
    assert box.requests_for("get_asset")  # processing took a while: the client polled
    sent = [call[0] for call in progress.calls]
    assert sent == sorted(set(sent)) and sent[-1] == 8 * MB


async def test_a_presigned_put_target_works_too(tmp_path: Path) -> None:
    async with serve_sandbox(sandbox_config(signed_upload="put")) as box:
        client, assets = assets_for(box)
        video = mp4_bytes(5 * MB)
        async with client:
            asset = await assets.upload_file(video, workspace_id=WS, file_name="take.mp4")
        assert stored(box, asset) == video
        assert [r.method for r in box.requests_for("bucket_upload")] == ["PUT"]


async def test_a_stream_that_cannot_seek_is_uploaded_whole(box: Sandbox, assets: Assets) -> None:
    data = mp4_bytes(6 * MB)

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            chunk = self.inner.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    asset = await assets.upload_file(io.BufferedReader(Pipe()), workspace_id=WS, file_name="piped.mp4")
    assert stored(box, asset) == data


async def test_bytes_that_are_not_media_are_refused_before_anything_is_sent(box: Sandbox, assets: Assets,
                                                                            tmp_path: Path) -> None:
    fake = write(tmp_path / "photo.png", b"this is a text file wearing a .png name\n" * 100)
    with pytest.raises(UploadError, match="not a media type FLORA accepts") as refused:
        await assets.upload_file(fake, workspace_id=WS)
    assert refused.value.asset_id is None
    assert box.requests == []


async def test_an_expired_target_is_renewed_through_retry(tmp_path: Path) -> None:
    async with serve_sandbox(sandbox_config(asset_reservation_ttl=0.0)) as box:
        client, assets = assets_for(box)

        async def reopen(sent: int, total: int) -> None:
            box.state.config.asset_reservation_ttl = 60.0  # the first target is already dead; the next one lives

        video = mp4_bytes(5 * MB)
        async with client:
            asset = await assets.upload_file(video, workspace_id=WS, progress=reopen)
        assert stored(box, asset) == video
        assert [r.status for r in box.requests_for("bucket_upload")] == [403, 204]
        assert [r.status for r in box.requests_for("retry_asset")] == [200]


@pytest.mark.parametrize(("route", "kind", "when"), [
    ("create_asset", "status", "before"),
    ("create_asset", "drop", "after"),
    ("bucket_upload", "status", "before"),
    ("bucket_upload", "drop", "after"),
    ("complete_asset", "status", "before"),
    ("complete_asset", "drop", "after"),
    ("get_asset", "status", "before"),
])
async def test_a_fault_at_a_signed_step_is_retried_and_the_upload_is_whole(
    box: Sandbox, assets: Assets, route: str, kind: str, when: str, caplog: pytest.LogCaptureFixture
) -> None:
    video = mp4_bytes(5 * MB)
    box.faults.inject(route, kind, when=when)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, "flora_mcp.api"):
        asset = await assets.upload_file(video, workspace_id=WS, file_name="v.mp4")
    assert stored(box, asset) == video
    keys = [r.idempotency_key for r in box.requests_for(route)] if route != "bucket_upload" else []
    if route in ("create_asset", "complete_asset") and kind == "status":
        assert len(keys) == 2 and keys[0] == keys[1]  # one key per logical call, reused on the retry
    if route == "create_asset" and kind == "drop":
        # The lost answer's reservation exists; its key now answers "duplicate"; a fresh reservation is made.
        assert [r.status for r in box.requests_for(route)] == [0, 409, 200]
        assert len(box.assets) == 2 and "answer was lost" in caplog.text
    if route == "complete_asset" and kind == "drop":
        assert [r.status for r in box.requests_for(route)] == [0, 409]
    assert box.faults.pending == []


async def test_a_direct_upload_whose_answer_is_lost_is_made_again_not_guessed(box: Sandbox, assets: Assets) -> None:
    box.faults.inject("create_asset", "drop", when="after")
    asset = await assets.upload_file(png_bytes(), workspace_id=WS, file_name="dot.png")
    keys = [r.idempotency_key for r in box.requests_for("create_asset")]
    assert keys[0] == keys[1] != keys[2]
    assert asset.asset_id == box.assets[-1].asset_id and len(box.assets) == 2


async def test_a_target_that_keeps_failing_ends_in_a_clear_error_after_bounded_tries(box: Sandbox,
                                                                                     assets: Assets) -> None:
    box.faults.inject("bucket_upload", "status", status=503, count=1000)
    with pytest.raises(ServerError) as failed:
        await assets.upload_file(mp4_bytes(5 * MB), workspace_id=WS)
    assert (failed.value.status_code, failed.value.endpoint) == (503, "upload target")
    assert len(box.requests_for("bucket_upload")) == 3 * (FAST_RETRIES.max_retries + 1)
    assert box.requests_for("complete_asset") == []  # never completed: no asset without its bytes


async def test_a_failed_asset_is_an_upload_error_naming_it(box: Sandbox, assets: Assets) -> None:
    box.state.config.fetch_timeout = 1
    url = f"{box.origin}/files/samples/missing.png"
    with pytest.raises(UploadError, match="could not be fetched") as failed:
        await assets.upload_url(url, workspace_id=WS)
    assert failed.value.asset_id == box.assets[0].asset_id and failed.value.status == "failed"


async def test_a_url_source_is_fetched_by_flora_not_by_us(box: Sandbox, assets: Assets) -> None:
    asset = await assets.upload_url(box.sample_url("portrait.png"), workspace_id=WS)
    assert (asset.width, asset.height, asset.uploaded_via) == (480, 640, "url")


async def test_the_uploaded_asset_is_the_runs_input(box: Sandbox, assets: Assets, tmp_path: Path) -> None:
    photo = write(tmp_path / "me.jpg", jpeg_bytes(400_000))
    asset = await assets.upload_file(photo, workspace_id=WS)
    assert asset.url is not None
    client = assets.client
    technique = await client.get_technique("cctv-cam")
    run = await client.create_run(technique, {"input_image": asset.url}, idempotency_key="run-on-asset")
    with anyio.fail_after(10):
        while not run.is_terminal:
            await anyio.sleep(0.02)
            run = await client.get_run(run.run_id, poll_url=run.poll_url)
    assert run.status == "completed"
    assert box.runs[0].inputs == {"input_image": asset.url}


async def test_list_workspaces_names_every_workspace_of_the_key() -> None:
    keys = {TEST_KEY: Account(other_workspaces={"ws_team": "Team"})}
    async with serve_sandbox(SandboxConfig(keys=keys)) as box:
        async with FloraClient(api_key=TEST_KEY, base_url=box.base_url) as client:
            workspaces = await client.list_workspaces()
    assert [(w.workspace_id, w.name) for w in workspaces] == [("ws_sandbox", "Sandbox Workspace"), ("ws_team", "Team")]


async def test_assets_list_pages(box: Sandbox, assets: Assets) -> None:
    for index in range(3):
        await assets.upload_file(png_bytes(color=(index, 0, 0)), workspace_id=WS, file_name=f"p{index}.png")
    page, cursor = await assets.list(workspace_id=WS, limit=2)
    assert [a.name for a in page] == ["p2.png", "p1.png"] and cursor
    rest, end = await assets.list(workspace_id=WS, limit=2, cursor=cursor)
    assert [a.name for a in rest] == ["p0.png"] and end is None
