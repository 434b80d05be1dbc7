"""Media out: outputs saved through the fetch guard under `{tool}-{run_id}-{output_id}.{ext}`, atomically, never
overwriting, nothing left behind by a failure; and the resource links of outputs and saved files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from flora_mcp.core.media_out import output_file_name, resource_links, save_output, save_outputs
from flora_mcp.core.previews import FetchRefused
from flora_mcp.core.results import OutputFile
from flora_mcp.sandbox import Sandbox, serve_sandbox
from tests.support import sandbox_config

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def box() -> AsyncIterator[Sandbox]:
    async with serve_sandbox(sandbox_config()) as sandbox:
        yield sandbox


def street(box: Sandbox, output_id: str = "output_image") -> OutputFile:
    return OutputFile(output_id=output_id, type="imageUrl", url=box.sample_url("street.png"))


async def served(url: str) -> bytes:
    async with httpx.AsyncClient(trust_env=False) as client:
        return (await client.get(url)).content


@pytest.mark.parametrize(("content_type", "url", "ext"), [
    ("image/png", "https://x.test/a", "png"), ("image/jpeg", "https://x.test/a.jpeg", "jpg"),
    ("video/mp4", "https://x.test/a", "mp4"), ("text/plain; charset=utf-8", "https://x.test/a", "txt"),
    ("", "https://x.test/a.webm", "webm"), ("", "https://x.test/a", "bin"),
])
def test_names_follow_the_pattern_with_the_extension_of_the_content_type(content_type: str, url: str,
                                                                          ext: str) -> None:
    name = output_file_name("cctv-cam", "run_1", "output_image", content_type, url)
    assert name == f"cctv-cam-run_1-output_image.{ext}"
    assert output_file_name("a/b", "run 1", "../x", "image/png", url) == "a_b-run_1-.._x.png"


async def test_an_output_is_saved_with_its_bytes_and_never_overwrites(box: Sandbox, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    first = await save_output(street(box), folder, tool="cctv-cam", run_id="run_7", flora_base_url=box.base_url)
    assert first.path == folder / "cctv-cam-run_7-output_image.png"
    assert first.path.read_bytes() == await served(box.sample_url("street.png"))
    assert (first.content_type, first.size_bytes) == ("image/png", first.path.stat().st_size)
    first.path.write_bytes(b"the user's edit")
    second = await save_output(street(box), folder, tool="cctv-cam", run_id="run_7", flora_base_url=box.base_url)
    assert second.path == folder / "cctv-cam-run_7-output_image-1.png"
    assert first.path.read_bytes() == b"the user's edit"
    assert {p.name for p in folder.iterdir()} == {first.path.name, second.path.name}  # no temporary left


async def test_a_refused_or_oversized_download_leaves_nothing(box: Sandbox, tmp_path: Path) -> None:
    private = OutputFile(output_id="x", type="imageUrl", url="https://10.0.0.9/x.png")
    with pytest.raises(FetchRefused, match="private"):
        await save_output(private, tmp_path, tool="t", run_id="r", flora_base_url=box.base_url)
    with pytest.raises(FetchRefused, match="cap"):
        await save_output(street(box), tmp_path, tool="t", run_id="r", flora_base_url=box.base_url, max_bytes=100)
    missing = OutputFile(output_id="y", type="imageUrl", url=f"{box.origin}/files/samples/nope.png")
    with pytest.raises(FetchRefused, match="HTTP 404"):
        await save_output(missing, tmp_path, tool="t", run_id="r", flora_base_url=box.base_url)
    assert list(tmp_path.iterdir()) == []


async def test_several_runs_outputs_are_saved_and_failures_named(box: Sandbox, tmp_path: Path) -> None:
    runs = [("run_a", [street(box), OutputFile(output_id="bad", type="imageUrl", url="https://10.0.0.9/x")]),
            ("run_b", [street(box)])]
    saved, failed = await save_outputs(runs, tmp_path, tool="tool", flora_base_url=box.base_url)
    assert [s.path.name for s in saved] == ["tool-run_a-output_image.png", "tool-run_b-output_image.png"]
    assert [name for name, _ in failed] == ["bad"] and "private" in failed[0][1]


async def test_resource_links_point_at_the_url_and_at_the_saved_file(box: Sandbox, tmp_path: Path) -> None:
    output = street(box)
    assert [link.uri for link in resource_links("cctv-cam", [output])] == [output.url]
    saved = await save_output(output, tmp_path, tool="cctv-cam", run_id="run_1", flora_base_url=box.base_url)
    links = resource_links("cctv-cam", [output.model_copy(update={"path": str(saved.path)})])
    assert [(link.uri, link.mime_type) for link in links] == [(output.url, "image/png"),
                                                               (saved.path.resolve().as_uri(), "image/png")]
    assert links[1].size == saved.size_bytes and links[1].name == saved.path.name
