"""What FLORA's assets accept: media types judged by their first bytes, their file extensions, and the size limits.

FLORA refuses anything but the types in `ALLOWED_MEDIA_TYPES` (from its official SDK, see the assets note), so the
client refuses them before sending and the sandbox refuses them as FLORA would. A type is told by the bytes
(`sniff_media_type`), never by a file's extension or a declared `Content-Type`: a text file named `.png` is text.
"""

from __future__ import annotations

__all__ = [
    "ALLOWED_MEDIA_TYPES",
    "DIRECT_UPLOAD_MAX_BYTES",
    "EXTENSIONS",
    "IMAGE_MAX_PIXELS",
    "SNIFF_BYTES",
    "URL_SOURCE_MAX_BYTES",
    "canonical_media_type",
    "extension_for",
    "media_kind",
    "media_type_for_extension",
    "sniff_media_type",
]

DIRECT_UPLOAD_MAX_BYTES = 4 * 1024 * 1024
"""The largest file one multipart `POST /assets` takes; larger files go the signed-upload way."""
URL_SOURCE_MAX_BYTES = 50 * 1024 * 1024
"""The largest file FLORA fetches itself for `POST /assets` with `source: <https URL>`."""
IMAGE_MAX_PIXELS = 150_000_000
SNIFF_BYTES = 64
"""How many leading bytes `sniff_media_type` needs."""

EXTENSIONS: dict[str, str] = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/avif": "avif",
    "image/heic": "heic",
    "image/heif": "heif",
    "video/mp4": "mp4",
    "video/webm": "webm",
    "video/quicktime": "mov",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/ogg": "ogg",
    "application/pdf": "pdf",
}
ALLOWED_MEDIA_TYPES: frozenset[str] = frozenset(EXTENSIONS)

_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "audio/mp3": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "video/mov": "video/quicktime",
    "application/x-pdf": "application/pdf",
}
_EXTENSION_TYPES = {
    **{extension: media_type for media_type, extension in EXTENSIONS.items()},
    "jpeg": "image/jpeg",
    "jpe": "image/jpeg",
    "qt": "video/quicktime",
    "m4v": "video/mp4",
    "oga": "audio/ogg",
    "wave": "audio/wav",
}
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_MP4_BRANDS = frozenset({b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"M4VP",
                         b"dash", b"mmp4", b"MSNV", b"f4v "})
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


def canonical_media_type(value: str | None) -> str | None:
    """`image/JPG; charset=x` -> `image/jpeg`; None for nothing."""
    if not value:
        return None
    bare = value.split(";", 1)[0].strip().lower()
    return _ALIASES.get(bare, bare) or None


def media_type_for_extension(name: str) -> str | None:
    """The allowed media type a file name's extension suggests (only to name things, never to judge content)."""
    _, dot, extension = name.rpartition(".")
    return _EXTENSION_TYPES.get(extension.lower()) if dot else None


def extension_for(media_type: str | None) -> str:
    """The file extension for a media type; `bin` for one FLORA does not list."""
    canonical = canonical_media_type(media_type)
    return EXTENSIONS.get(canonical or "", "bin")


def media_kind(media_type: str | None) -> str | None:
    """`image`, `video`, `audio` or `document` for an allowed type, else None."""
    canonical = canonical_media_type(media_type)
    if canonical not in ALLOWED_MEDIA_TYPES:
        return None
    assert canonical is not None
    return "document" if canonical == "application/pdf" else canonical.split("/", 1)[0]


def _iso_media(head: bytes) -> str | None:
    """ISO base media files (MP4, QuickTime, HEIF, AVIF) by their `ftyp` brands."""
    if head[4:8] != b"ftyp":
        return "video/quicktime" if head[4:8] in _QUICKTIME_ATOMS else None
    size = int.from_bytes(head[0:4], "big")
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, min(size, len(head)), 4)]
    if brands[0] in _AVIF_BRANDS or (brands[0] in _HEIF_BRANDS and any(b in _AVIF_BRANDS for b in brands)):
        return "image/avif"
    if brands[0] in _HEIC_BRANDS:
        return "image/heic"
    if brands[0] in _HEIF_BRANDS:
        return "image/heif"
    if brands[0] == b"qt  ":
        return "video/quicktime"
    if brands[0] in _MP4_BRANDS or brands[0].startswith(b"3g"):
        return "video/mp4"
    return None


def sniff_media_type(head: bytes) -> str | None:
    """The allowed media type the first bytes of a file (at least `SNIFF_BYTES` when it has them) show, else None.

    None means FLORA would refuse the file: text, HTML, SVG, archives, executables, unknown formats, nothing at all.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in head[:SNIFF_BYTES] else None  # other Matroska files are not allowed
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE6 in (0xE2, 0xE4, 0xE6)):
        return "audio/mpeg"  # an MPEG audio frame: 11 sync bits, then a layer that is not "reserved"
    return _iso_media(head)
