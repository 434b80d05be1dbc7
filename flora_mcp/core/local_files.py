"""Which local files a media input may read, and what they are: allowed folders, refusals, `data:` values.

A media input's value is one of (`classify`):

    https URL         sent to FLORA as it is (plain http too: FLORA decides)
    data: URL         decoded here, within `max_data_bytes`, and uploaded
    file:// URI       a local path, as below
    a local path      absolute, `~/...`, or relative to the first allowed folder; uploaded
    an element id     only for `accepts_element` inputs (anything not shaped like a path or URL): sent as it is

A path is read only when all of these hold (`check_path`), and refused with a reason otherwise, before anything is
sent: local files are allowed (not hosted mode); it resolves, through every symlink and `..`, to a regular file
inside one of the allowed folders; no part of it below that folder, as given or as resolved, is hidden (a name
starting with "."); it is at most `max_file_bytes`; and its first bytes are a media type FLORA accepts of the kind
the input takes (an `imageUrl` takes images). The file is opened once, here, and the open file is what is hashed and
uploaded, so it cannot be swapped for another between the check and the upload.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal
from urllib.parse import unquote, unquote_to_bytes, urlsplit

from flora_mcp._media import SNIFF_BYTES, media_kind, sniff_media_type
from flora_mcp.api.assets import MAX_DATA_URL_BYTES, MAX_UPLOAD_BYTES

__all__ = [
    "KIND_BY_INPUT_TYPE",
    "FilePolicy",
    "LocalMedia",
    "Refused",
    "ValueKind",
    "allowed_folders",
    "classify",
    "describe_size",
]


KIND_BY_INPUT_TYPE = {
    "imageUrl": "image", "image_url": "image",
    "videoUrl": "video", "video_url": "video",
    "audioUrl": "audio", "audio_url": "audio",
    "documentUrl": "document", "document_url": "document",
}

ValueKind = Literal["url", "data", "path", "element"]


class Refused(Exception):
    """A media value that will not be read or sent; the message is the reason, for the agent."""


def classify(value: str, *, accepts_element: bool = False) -> ValueKind:
    """What kind of media value this is (see the module docstring)."""
    lowered = value[:8].lower()
    if lowered.startswith(("https://", "http://")):
        return "url"
    if lowered.startswith("data:"):
        return "data"
    if lowered.startswith("file:"):
        return "path"
    if accepts_element and not value.startswith(("/", "~", "./", "../", ".\\", "..\\")) and "/" not in value \
            and "\\" not in value and "." not in value:
        return "element"  # an element id (a name without a path separator or an extension)
    return "path"


def describe_size(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 1024 * 1024 else f"{size} bytes"


def allowed_folders(roots: Sequence[str] | None, input_dirs: str | None, home: Path | None = None) -> list[Path]:
    """The folders local files may come from: the client's MCP roots when it offered any, else FLORA_INPUT_DIRS
    (os.pathsep-separated), else the user's home. Each resolved; a root that is not a `file://` URI is ignored."""
    if roots:
        folders = [Path(_path_of_file_uri(uri)) for uri in roots if uri.lower().startswith("file:")]
    elif input_dirs:
        folders = [Path(part).expanduser() for part in input_dirs.split(os.pathsep) if part.strip()]
    else:
        folders = [home or Path.home()]
    return [folder.resolve() for folder in folders]


def _path_of_file_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise Refused(f"{uri} names another machine ({parts.netloc})")
    path = unquote(parts.path)
    if os.name == "nt" and len(path) > 2 and path[0] == "/" and path[2] == ":":
        path = path[1:]  # file:///C:/x -> C:/x
    return path


def _hidden_part(relative: Path) -> str | None:
    return next((part for part in relative.parts if part.startswith(".") and part not in (".", "..")), None)


@dataclass
class LocalMedia:
    """Bytes a media input will upload: an open local file or a decoded `data:` value, checked and sniffed."""

    content_type: str
    size: int
    label: str
    """What the user would call it: the path as resolved, or `a data: URL`."""
    file_name: str
    path: Path | None = None
    data: bytes | None = None
    stream: IO[bytes] | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


@dataclass(frozen=True)
class FilePolicy:
    """What local media may be read.

    Args:
        folders: the allowed folders, resolved (see `allowed_folders`).
        allow_local: False in hosted mode, where the server's disk is not the user's.
        max_file_bytes: the largest local file.
        max_data_bytes: the largest decoded `data:` value.
    """

    folders: tuple[Path, ...]
    allow_local: bool = True
    max_file_bytes: int = MAX_UPLOAD_BYTES
    max_data_bytes: int = MAX_DATA_URL_BYTES

    def check_path(self, value: str, kind: str | None) -> LocalMedia:
        """Open a local file a media input names, if it may be read.

        Args:
            value: the path, `~/...`, relative path or `file://` URI.
            kind: the media kind the input takes (`image`, ...); None accepts any FLORA media.

        Raises:
            Refused: the reason, naming no more than the user gave and the folders allowed.
        """
        if not self.allow_local:
            raise Refused("local files cannot be read by a hosted server (its disk is not yours); give an https "
                          "URL or a data: URL instead")
        if not self.folders:
            raise Refused("no folder is allowed for local files")
        raw = _path_of_file_uri(value) if value[:5].lower() == "file:" else value
        given = Path(raw).expanduser()
        if not given.is_absolute():
            given = self.folders[0] / given
        try:
            resolved = given.resolve(strict=True)
        except (OSError, RuntimeError):
            raise Refused("no such file") from None
        folder = next((f for f in self.folders if resolved.is_relative_to(f)), None)
        if folder is None:
            raise Refused(f"outside the allowed folders ({', '.join(map(str, self.folders))}), "
                          "after following symlinks and '..'")
        hidden = _hidden_part(resolved.relative_to(folder)) or _given_hidden_part(given, self.folders)
        if hidden is not None:
            raise Refused(f"hidden files and folders are never read ({hidden})")
        return self._open(resolved, kind)

    def _open(self, resolved: Path, kind: str | None) -> LocalMedia:
        # Non-blocking, so that a FIFO swapped in does not hang us; no-follow, so that a symlink swapped in for the
        # checked file is refused; then the open file itself is what is judged, hashed and sent.
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        try:
            descriptor = os.open(resolved, flags)
        except OSError as exc:
            raise Refused(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            os.close(descriptor)
            raise Refused("not a regular file")
        stream = os.fdopen(descriptor, "rb")
        try:
            if info.st_size > self.max_file_bytes:
                raise Refused(f"{describe_size(info.st_size)}, more than the {describe_size(self.max_file_bytes)} "
                              "limit (FLORA_MAX_UPLOAD_BYTES)")
            content_type = _judge(stream.read(SNIFF_BYTES), kind)
            stream.seek(0)
        except BaseException:
            stream.close()
            raise
        return LocalMedia(content_type=content_type, size=info.st_size, label=str(resolved),
                          file_name=resolved.name, path=resolved, stream=stream)

    def check_data(self, value: str, kind: str | None) -> LocalMedia:
        """Decode a `data:` value, if it is media within the cap.

        Raises:
            Refused: malformed, too large, or not media of the input's kind.
        """
        header, comma, payload = value[5:].partition(",")
        if not comma:
            raise Refused("a malformed data: URL (no comma)")
        base64_encoded = header.lower().endswith(";base64")
        if (len(payload) * 3 // 4 if base64_encoded else len(payload) // 3) > self.max_data_bytes:
            raise Refused(f"a data: URL larger than the {describe_size(self.max_data_bytes)} limit "
                          "(FLORA_MAX_DATA_URL_BYTES)")
        try:
            data = base64.b64decode(payload, validate=True) if base64_encoded else unquote_to_bytes(payload)
        except (binascii.Error, ValueError):
            raise Refused("a malformed data: URL (bad base64)") from None
        if len(data) > self.max_data_bytes:
            raise Refused(f"a data: URL of {describe_size(len(data))}, more than the "
                          f"{describe_size(self.max_data_bytes)} limit (FLORA_MAX_DATA_URL_BYTES)")
        content_type = _judge(data[:SNIFF_BYTES], kind)
        extension = content_type.split("/")[-1]
        return LocalMedia(content_type=content_type, size=len(data), label="a data: URL",
                          file_name=f"upload.{extension}", data=data)


def _given_hidden_part(given: Path, folders: Sequence[Path]) -> str | None:
    """A hidden name in the path as given, before symlinks are followed (a hidden link to a visible file)."""
    for folder in folders:
        if given.parts[: len(folder.parts)] == folder.parts:
            return _hidden_part(Path(*given.parts[len(folder.parts):]))
    return None


def _judge(head: bytes, kind: str | None) -> str:
    sniffed = sniff_media_type(head)
    if sniffed is None:
        raise Refused("not a media type FLORA accepts (judged by its content, not its name)")
    found = media_kind(sniffed)
    if kind is not None and found != kind:
        raise Refused(f"a {found} ({sniffed}), but this input takes {'an' if kind[0] in 'aeiou' else 'a'} {kind}")
    return sniffed
