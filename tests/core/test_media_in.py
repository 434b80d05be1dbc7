"""Media inputs in: which local files may be read (folders, hidden names, symlinks, `..`, content, size, hosted mode),
`data:` values, and their upload to the sandbox once per distinct file, concurrently, into the right workspace."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flora_mcp.api.assets import Assets
from flora_mcp.api.client import FloraClient
from flora_mcp.api.models import Technique
from flora_mcp.core.local_files import FilePolicy, Refused, allowed_folders, classify
from flora_mcp.core.media_in import MediaInputs, Prepared, WorkspaceChooser, WorkspaceError
from flora_mcp.core.results import FieldError
from flora_mcp.sandbox import Account, Sandbox, serve_sandbox
from flora_mcp.store import SQLiteStore, Store
from tests.media_support import MB, jpeg_bytes, mp4_bytes, png_bytes, write
from tests.support import TEST_KEY, sandbox_config

PNG = png_bytes()
COMPOSITE = Technique.model_validate({
    "technique_id": "tech_x", "slug": "side-by-side-composite", "name": "Side by side",
    "inputs": [{"id": "left_image", "type": "imageUrl"}, {"id": "right_image", "type": "imageUrl"},
               {"id": "more", "type": "imageUrl", "allow_multiple": True, "optional": True},
               {"id": "element", "type": "imageUrl", "accepts_element": True, "optional": True},
               {"id": "caption", "type": "text", "optional": True}],
})


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    write(root / "photo.png", PNG)
    return root.resolve()


def policy(*folders: Path, **options: object) -> FilePolicy:
    return FilePolicy(tuple(f.resolve() for f in folders), **options)  # type: ignore[arg-type]


# Classifying values ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "element", "kind"), [
    ("https://x.test/a.png", False, "url"), ("HTTP://x.test/a.png", False, "url"),
    ("data:image/png;base64,AAAA", False, "data"), ("file:///tmp/a.png", False, "path"),
    ("/tmp/a.png", False, "path"), ("~/a.png", False, "path"), ("photo.png", False, "path"),
    ("el_0123abcd", True, "element"), ("el_0123abcd", False, "path"), ("./photo.png", True, "path"),
    ("photo.png", True, "path"),
])
def test_values_are_classified(value: str, element: bool, kind: str) -> None:
    assert classify(value, accepts_element=element) == kind


def test_allowed_folders_are_roots_else_input_dirs_else_home(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert allowed_folders([a.as_uri(), "https://not-a-root.test/"], str(b)) == [a.resolve()]
    assert allowed_folders(None, f"{a}{os.pathsep}{b}") == [a.resolve(), b.resolve()]
    assert allowed_folders([], None, home=b) == [b.resolve()]


# Paths -----------------------------------------------------------------------------------------------------------


def test_a_file_inside_an_allowed_folder_is_opened_by_absolute_relative_or_file_uri(folder: Path) -> None:
    rules = policy(folder)
    (folder / "sub").mkdir()
    for value in (str(folder / "photo.png"), "photo.png", (folder / "photo.png").as_uri(), "./sub/../photo.png"):
        media = rules.check_path(value, "image")
        try:
            assert (media.content_type, media.size, media.path) == ("image/png", len(PNG), folder / "photo.png")
            assert media.stream is not None and media.stream.read() == PNG
        finally:
            media.close()


def test_a_home_relative_path_is_expanded(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(folder))
    policy(folder).check_path("~/photo.png", "image").close()


def refusal(rules: FilePolicy, value: str, kind: str | None = "image") -> str:
    with pytest.raises(Refused) as refused:
        rules.check_path(value, kind).close()
    return str(refused.value)


def test_hidden_files_and_folders_are_never_read(folder: Path) -> None:
    write(folder / ".secret.png", PNG)
    write(folder / ".cache" / "photo.png", PNG)
    (folder / "visible.png").symlink_to(folder / ".secret.png")
    (folder / ".link.png").symlink_to(folder / "photo.png")
    for value in (".secret.png", ".cache/photo.png", "visible.png", ".link.png"):
        assert "hidden" in refusal(policy(folder), value), value


def test_nothing_outside_the_allowed_folders_through_paths_symlinks_or_dotdot(folder: Path, tmp_path: Path) -> None:
    outside = write(tmp_path / "elsewhere" / "photo.png", PNG)
    (folder / "escape.png").symlink_to(outside)
    (folder / "door").symlink_to(outside.parent, target_is_directory=True)
    for value in (str(outside), "../elsewhere/photo.png", "escape.png", "door/photo.png", outside.as_uri()):
        assert "outside the allowed folders" in refusal(policy(folder), value), value


@pytest.mark.parametrize(("name", "data", "kind", "why"), [
    ("notes.png", b"a text file wearing a .png name\n" * 20, "image", "not a media type"),
    ("clip.png", mp4_bytes(4096), "image", "a video (video/mp4), but this input takes an image"),
    ("empty.png", b"", "image", "not a media type"),
])
def test_content_decides_not_the_name(folder: Path, name: str, data: bytes, kind: str, why: str) -> None:
    write(folder / name, data)
    assert why in refusal(policy(folder), name, kind)


def test_size_cap_directories_missing_files_and_hosted_mode(folder: Path) -> None:
    write(folder / "big.jpg", jpeg_bytes(2 * MB))
    assert "more than the 1.0 MB limit" in refusal(policy(folder, max_file_bytes=MB), "big.jpg")
    (folder / "album").mkdir()
    assert "not a regular file" in refusal(policy(folder), "album")
    assert "no such file" in refusal(policy(folder), "nothing.png")
    assert "hosted server" in refusal(policy(folder, allow_local=False), "photo.png")


# data: values ------------------------------------------------------------------------------------------------------


def test_data_values_are_decoded_judged_and_capped() -> None:
    rules = policy(Path("/"), max_data_bytes=1000)
    media = rules.check_data("data:image/png;base64," + base64.b64encode(PNG).decode(), "image")
    assert (media.content_type, media.data, media.label) == ("image/png", PNG, "a data: URL")
    with pytest.raises(Refused, match="not a media type"):
        rules.check_data("data:image/png;base64," + base64.b64encode(b"hello").decode(), "image")
    with pytest.raises(Refused, match="larger than"):
        rules.check_data("data:image/png;base64," + base64.b64encode(jpeg_bytes(300_000)).decode(), "image")
    with pytest.raises(Refused, match="malformed"):
        rules.check_data("data:image/png;base64,@@@", "image")


# Uploads against the sandbox ------------------------------------------------------------------------------------


_CLIENTS: list[FloraClient] = []


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    async with serve_sandbox(sandbox_config()) as sandbox:
        yield sandbox
        while _CLIENTS:
            await _CLIENTS.pop().aclose()


def media_for(box: Sandbox, memo: Store | None = None, workspace: str | None = None) -> MediaInputs:
    """Closed when the `box` fixture ends."""
    client = FloraClient(api_key=TEST_KEY, base_url=box.base_url)
    _CLIENTS.append(client)
    assets = Assets(client, poll_interval=0.01, ready_timeout=10)
    return MediaInputs(assets, memo or SQLiteStore(":memory:"), "acct", WorkspaceChooser(client, workspace))


async def prepared(media: MediaInputs, args: dict[str, object], folder: Path) -> Prepared:
    ready = await media.prepare(COMPOSITE, args, lambda: _ready(policy(folder)))
    assert isinstance(ready, Prepared), ready
    return ready


async def _ready(rules: FilePolicy) -> FilePolicy:
    return rules


@pytest.mark.anyio
async def test_local_and_data_values_become_asset_urls_and_urls_pass_through(box: Sandbox, folder: Path) -> None:
    write(folder / "right.jpg", jpeg_bytes(300_000))
    media = media_for(box)
    data = "data:image/png;base64," + base64.b64encode(png_bytes(color=(0, 0, 255))).decode()
    args = {"left_image": "photo.png", "right_image": str(folder / "right.jpg"), "more": [data, box.sample_url(
        "logo.png")], "element": "el_abc", "caption": "hi"}
    ready = await prepared(media, args, folder)
    sent = []
    new_args, uploads = await media.upload(ready, lambda done, total, message: sent.append((done, total)))
    ready.close()
    by_id = {asset.asset_id: asset for asset in box.assets}
    assert len(by_id) == 3 and [u.input for u in uploads] == ["left_image", "right_image", "more"]
    for upload in uploads:
        assert upload.url == by_id[upload.asset_id].to_json(box.origin)["url"]
        assert not upload.reused
    assert new_args["left_image"] == uploads[0].url and new_args["right_image"] == uploads[1].url
    assert new_args["more"] == [uploads[2].url, box.sample_url("logo.png")]
    assert (new_args["element"], new_args["caption"]) == ("el_abc", "hi")
    assert box.asset_file(uploads[1].asset_id).read_bytes() == (folder / "right.jpg").read_bytes()  # type: ignore
    assert uploads[0].source == str(folder / "photo.png") and uploads[2].source == "a data: URL"
    assert sent[-1][0] == sent[-1][1] == sum(u.size_bytes for u in uploads)
    assert [done for done, _ in sent] == sorted(done for done, _ in sent)


@pytest.mark.anyio
async def test_the_same_bytes_are_uploaded_once_per_workspace(box: Sandbox, folder: Path, tmp_path: Path) -> None:
    write(folder / "copy.png", PNG)
    memo = SQLiteStore(str(tmp_path / "journal.sqlite3"))
    first = await prepared(media_for(box, memo), {"left_image": "photo.png", "right_image": "copy.png"}, folder)
    _, uploads = await media_for(box, memo).upload(first)
    first.close()
    assert [u.reused for u in uploads] == [False, True] and uploads[0].asset_id == uploads[1].asset_id
    again = await prepared(media_for(box, memo), {"left_image": "copy.png", "right_image": "photo.png"}, folder)
    _, later = await media_for(box, memo).upload(again)
    again.close()
    assert all(u.reused for u in later) and len(box.requests_for("create_asset")) == 1
    del box.state.assets.assets[uploads[0].asset_id]  # FLORA lost it: uploaded again, not reused blindly
    lost = await prepared(media_for(box, memo), {"left_image": "photo.png", "right_image": "copy.png"}, folder)
    _, fresh = await media_for(box, memo).upload(lost)
    lost.close()
    assert [u.reused for u in fresh] == [False, True] and fresh[0].asset_id != uploads[0].asset_id
    assert len(box.requests_for("create_asset")) == 2
    other = await prepared(media_for(box, memo, "ws_other"), {"left_image": "photo.png", "right_image": "photo.png"},
                     folder)
    other.close()
    assert len(box.requests_for("create_asset")) == 2  # preparing sends nothing


@pytest.mark.anyio
async def test_refusals_name_input_value_and_reason_and_send_nothing(box: Sandbox, folder: Path) -> None:
    write(folder / ".hidden.png", PNG)
    problems = await media_for(box).prepare(COMPOSITE, {"left_image": ".hidden.png", "right_image": "/etc/passwd"},
                                            lambda: _ready(policy(folder)))
    assert problems == [
        FieldError(field="left_image", message="'.hidden.png' refused: hidden files and folders are never read "
                                               "(.hidden.png)"),
        FieldError(field="right_image", message=f"'/etc/passwd' refused: outside the allowed folders ({folder}), "
                                                "after following symlinks and '..'"),
    ]
    assert box.requests == []


@pytest.mark.anyio
async def test_several_workspaces_without_a_choice_is_a_clear_error() -> None:
    keys = {TEST_KEY: Account(other_workspaces={"ws_team": "Team"})}
    async with serve_sandbox(sandbox_config(keys=keys)) as box, \
            FloraClient(api_key=TEST_KEY, base_url=box.base_url) as client:
        chooser = WorkspaceChooser(client, None)
        with pytest.raises(WorkspaceError, match=r"2 workspaces: Sandbox Workspace \(ws_sandbox\); Team \(ws_team\)"
                                                 r"\. Set FLORA_WORKSPACE_ID"):
            await chooser.workspace_id()
        assert await WorkspaceChooser(chooser.client, "ws_team").workspace_id() == "ws_team"
        assert len(box.requests_for("list_workspaces")) == 1


@pytest.mark.anyio
async def test_one_workspace_is_used_and_asked_for_once(box: Sandbox) -> None:
    chooser = media_for(box).workspace
    assert [await chooser.workspace_id() for _ in range(3)] == ["ws_sandbox"] * 3
    assert len(box.requests_for("list_workspaces")) == 1
