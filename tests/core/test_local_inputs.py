"""Local files as media inputs, end to end against the sandbox: through `Toolkit.call` and MCP, full and compact.

The run gets the asset URL; a file is uploaded once; a refused file sends nothing at all; cost caps come before any
byte; hosted mode takes no path; MCP roots narrow the folders; progress rises while bytes go; faults end in a clear
error, never in a run without its input; outputs land in FLORA_OUTPUT_DIR and come back as resource links.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import mcp.types as types
import pytest

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Account, Sandbox, serve_sandbox
from tests.media_support import (
    MB,
    jpeg_bytes,
    mp4_bytes,
    photos_folder,  # noqa: F401 - the `folder` fixture
    png_bytes,
    write,
)
from tests.support import TEST_KEY, mcp_client, sandbox_config, settings_for

pytestmark = pytest.mark.anyio


def kit_for(sandbox: Sandbox, folder: Path, **settings: Any) -> Toolkit:
    return Toolkit(settings_for(sandbox, input_dirs=str(folder), **settings))


def sent_since(sandbox: Sandbox, mark: int) -> list[str]:
    return [r.route for r in sandbox.requests[mark:]]


async def test_a_local_photo_is_uploaded_and_the_run_gets_its_asset_url(sandbox: Sandbox, folder: Path) -> None:
    async with kit_for(sandbox, folder) as kit:
        result = await kit.call("cctv-cam", {"input_image": str(folder / "me.jpg")})
        again = await kit.call("color-grade-image", {"input_image": "me.jpg", "grade": "noir"})
    assert result.status == "completed", result
    [upload] = result.uploads
    assert (upload.input, upload.source, upload.size_bytes, upload.reused) == ("input_image", str(folder / "me.jpg"),
                                                                              300_000, False)
    assert sandbox.runs[0].inputs == {"input_image": upload.url}
    assert sandbox.asset_file(upload.asset_id).read_bytes() == (folder / "me.jpg").read_bytes()  # type: ignore
    assert again.status == "completed" and again.uploads[0].reused and again.uploads[0].url == upload.url
    assert len(sandbox.requests_for("create_asset")) == 1  # the same bytes, uploaded once
    assert f"Input input_image: {folder / 'me.jpg'}" in result.summary()


@pytest.mark.parametrize("case", ["dotfile", "outside", "symlink-escape", "text-as-png", "too-big", "missing"])
async def test_a_refused_file_is_invalid_naming_input_path_and_reason_and_sends_nothing(
    sandbox: Sandbox, folder: Path, tmp_path: Path, case: str
) -> None:
    outside = write(tmp_path / "elsewhere" / "secret.png", png_bytes())
    write(folder / ".hidden.png", png_bytes())
    write(folder / "notes.png", b"plain text, not a picture\n" * 40)
    write(folder / "huge.jpg", jpeg_bytes(2 * MB))
    (folder / "link.png").symlink_to(outside)
    value, why = {"dotfile": (".hidden.png", "hidden"), "outside": (str(outside), "outside the allowed folders"),
                  "symlink-escape": ("link.png", "outside the allowed folders"),
                  "text-as-png": ("notes.png", "not a media type"), "too-big": ("huge.jpg", "more than the 1.0 MB"),
                  "missing": ("gone.png", "no such file")}[case]
    async with kit_for(sandbox, folder, max_upload_bytes=MB) as kit:
        mark = len(sandbox.requests)
        result = await kit.call("cctv-cam", {"input_image": value})
    assert (result.status, result.error_code) == ("invalid", "invalid_arguments")
    [field] = result.error_fields
    assert field.field == "input_image" and repr(value) in field.message and why in field.message
    assert sent_since(sandbox, mark) == []  # not even GET /workspaces


async def test_a_data_url_is_uploaded_not_forwarded(sandbox: Sandbox, folder: Path) -> None:
    data = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    async with kit_for(sandbox, folder) as kit:
        result = await kit.call("cctv-cam", {"input_image": data})
    assert result.status == "completed" and result.uploads[0].source == "a data: URL"
    assert sandbox.runs[0].inputs["input_image"] == result.uploads[0].url
    assert sandbox.runs[0].inputs["input_image"].startswith(f"{sandbox.origin}/files/assets/")


async def test_hosted_mode_refuses_a_path_and_takes_a_data_url_within_its_cap(sandbox: Sandbox, folder: Path) -> None:
    data = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    big = "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(300_000)).decode()
    async with Toolkit(settings_for(sandbox, max_data_url_bytes=100_000), local_files=False) as kit:
        mark = len(sandbox.requests)
        path = await kit.call("cctv-cam", {"input_image": str(folder / "me.jpg")})
        too_big = await kit.call("cctv-cam", {"input_image": big})
        assert sent_since(sandbox, mark) == []
        inline = await kit.call("cctv-cam", {"input_image": data})
    assert path.status == "invalid" and "hosted server" in path.error_fields[0].message
    assert too_big.status == "invalid" and "FLORA_MAX_DATA_URL_BYTES" in too_big.error_fields[0].message
    assert inline.status == "completed" and inline.uploads


async def test_cost_caps_are_checked_before_any_byte_is_uploaded(sandbox: Sandbox, folder: Path) -> None:
    async with kit_for(sandbox, folder, max_cost_per_call=0.01) as kit:
        mark = len(sandbox.requests)
        result = await kit.call("cctv-cam", {"input_image": "me.jpg"})
    assert result.error_code == "cost_cap_exceeded" and sent_since(sandbox, mark) == []


async def test_progress_rises_while_a_large_file_uploads(sandbox: Sandbox, folder: Path) -> None:
    write(folder / "big.jpg", jpeg_bytes(9 * MB))  # the signed way
    seen: list[tuple[float, str]] = []

    async def progress(percent: float, message: str) -> None:
        seen.append((percent, message))

    async with kit_for(sandbox, folder) as kit:
        result = await kit.call("cctv-cam", {"input_image": "big.jpg"}, progress=progress)
    assert result.status == "completed"
    uploading = [p for p, message in seen if message.startswith("uploading")]
    assert len(uploading) >= 5 and uploading[-1] <= 10.0
    percents = [p for p, _ in seen]
    assert all(a < b for a, b in zip(percents, percents[1:], strict=False))
    assert seen.index(next(s for s in seen if s[1] == "submitting")) > len(uploading) - 1


@pytest.mark.parametrize(("route", "status", "size"), [
    ("create_asset", 503, 300_000), ("create_asset", 403, 300_000), ("list_workspaces", 503, 300_000),
    ("create_asset", 503, 5 * MB), ("bucket_upload", 503, 5 * MB), ("complete_asset", 500, 5 * MB),
    ("get_asset", 502, 5 * MB),
])
async def test_an_asset_step_that_keeps_failing_ends_in_a_clear_error_and_no_run(
    folder: Path, route: str, status: int, size: int
) -> None:
    write(folder / "input.jpg", jpeg_bytes(size))
    async with serve_sandbox(sandbox_config(asset_processing_delay=0.05)) as sandbox:
        sandbox.faults.inject(route, "status", status=status, count=100)
        async with kit_for(sandbox, folder, max_retries=1) as kit:
            result = await kit.call("cctv-cam", {"input_image": "input.jpg"})
        assert result.status == "error" and result.is_error and result.error_message and result.next_step
        assert result.error_code != "internal_error", result
        assert sandbox.requests_for("create_technique_run") == [] and sandbox.runs == []


async def test_a_video_for_an_image_input_is_refused_by_its_content(sandbox: Sandbox, folder: Path) -> None:
    write(folder / "clip.jpg", mp4_bytes(100_000))
    async with kit_for(sandbox, folder) as kit:
        result = await kit.call("cctv-cam", {"input_image": "clip.jpg"})
    assert result.status == "invalid" and "this input takes an image" in result.error_fields[0].message


async def test_several_workspaces_without_a_choice_name_them_and_run_nothing(folder: Path) -> None:
    keys = {TEST_KEY: Account(other_workspaces={"ws_team": "Team"})}
    async with serve_sandbox(sandbox_config(keys=keys)) as box:
        async with kit_for(box, folder) as kit:
            unclear = await kit.call("cctv-cam", {"input_image": "me.jpg"})
        async with kit_for(box, folder, workspace_id="ws_team") as kit:
            chosen = await kit.call("cctv-cam", {"input_image": "me.jpg"})
    assert unclear.error_code == "workspace_required"
    assert "Team (ws_team)" in (unclear.error_message or "") and "FLORA_WORKSPACE_ID" in (unclear.next_step or "")
    assert chosen.status == "completed" and box.assets[-1].workspace_id == "ws_team"


async def test_compact_mode_takes_a_local_file_too(sandbox: Sandbox, folder: Path) -> None:
    async with kit_for(sandbox, folder, tools_mode="compact") as kit:
        result = await kit.call("flora_run_technique", {"technique": "cctv-cam", "inputs": {"input_image": "me.jpg"}})
    assert result.status == "completed" and result.uploads


async def test_mcp_roots_narrow_the_folders(sandbox: Sandbox, folder: Path, tmp_path: Path) -> None:
    other = (tmp_path / "project").resolve()
    write(other / "shot.png", png_bytes())

    async def roots(context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri=other.as_uri(), name="project")])  # type: ignore[arg-type]

    async with kit_for(sandbox, folder) as kit, mcp_client(kit, list_roots_callback=roots) as client:
        outside_roots = await client.call_tool("cctv-cam", {"input_image": str(folder / "me.jpg")})
        inside = await client.call_tool("cctv-cam", {"input_image": "shot.png"})
    assert outside_roots.is_error and "outside the allowed folders" in str(outside_roots.structured_content)
    assert not inside.is_error, inside.structured_content


async def test_outputs_land_in_the_output_folder_and_come_back_as_links(sandbox: Sandbox, folder: Path,
                                                                        tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with kit_for(sandbox, folder, output_dir=str(out), preview=False) as kit, mcp_client(kit) as client:
        answer = await client.call_tool("cctv-cam", {"input_image": "me.jpg"})
        result = await kit.call("flora_get_run", {"run_id": (answer.structured_content or {})["run_id"]})
    data = answer.structured_content or {}
    [output] = data["outputs"]
    saved = Path(output["path"])
    assert saved == out / f"cctv-cam-{data['run_id']}-output_image.png"
    assert saved.read_bytes() == sandbox.state.files_dir.joinpath(  # type: ignore[union-attr]
        output["url"].split("/files/", 1)[1]).read_bytes()
    links = [c for c in answer.content if isinstance(c, types.ResourceLink)]
    assert [link.uri for link in links] == [output["url"], saved.resolve().as_uri()]
    assert result.outputs[0].path == str(saved) and [p.name for p in out.iterdir()] == [saved.name]
