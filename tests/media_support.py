"""Media files for upload tests: real images of a chosen size, and files whose first bytes say video, audio or PDF.

A photo of N bytes is a real JPEG (Pillow decodes it) padded after its end marker, which decoders ignore; a "video" is
an MP4 `ftyp` box followed by noise, which is all that content sniffing (FLORA's, the sandbox's, ours) looks at.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

MB = 1024 * 1024


def png_bytes(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def jpeg_bytes(total: int, size: tuple[int, int] = (640, 480)) -> bytes:
    """A real JPEG photo of exactly `total` bytes (at least the encoded image's own size)."""
    out = io.BytesIO()
    Image.effect_noise(size, 64).convert("RGB").save(out, format="JPEG", quality=90)
    data = out.getvalue()
    if total < len(data):
        raise ValueError(f"a {size} JPEG takes {len(data)} bytes; asked for {total}")
    return data + os.urandom(total - len(data))


def mp4_bytes(total: int) -> bytes:
    """Bytes that sniff as an MP4 video: an `ftyp` box with brand isom, then noise."""
    head = (24).to_bytes(4, "big") + b"ftypisom" + b"\x00\x00\x02\x00" + b"isomiso2"
    return head + os.urandom(total - len(head))


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture(name="folder")
def photos_folder(tmp_path: Path) -> Path:
    """An allowed input folder holding one real 300 KB photo, `me.jpg` (import it to use it as `folder`)."""
    root = (tmp_path / "photos").resolve()
    write(root / "me.jpg", jpeg_bytes(300_000))
    return root
