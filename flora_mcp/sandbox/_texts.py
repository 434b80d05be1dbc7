"""Text, QR and audio techniques: find and replace, split, QR code, tone, and the synthetic benchmark filler."""

from __future__ import annotations

import io
import math
import struct
import wave
from collections.abc import Mapping

import qrcode

from flora_mcp.sandbox._catalog import InputValue, Product, TechniqueFailure

__all__ = [
    "MAX_PARTS",
    "TONE_SECONDS",
    "find_and_replace",
    "qr_code",
    "split_text",
    "synthetic_echo",
    "tone",
]

MAX_PARTS = 50
TONE_SECONDS = 2
TONE_RATE = 22050


def _text(values: Mapping[str, InputValue], key: str, default: str = "") -> str:
    value = values.get(key, default)
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _txt(output_id: str, text: str) -> Product:
    return Product(output_id, "text", text.encode("utf-8"), "txt")


def qr_code(values: Mapping[str, InputValue]) -> list[Product]:
    """A PNG QR code that decodes back to `content`."""
    image = qrcode.make(_text(values, "content"), border=4, box_size=10)
    buffer = io.BytesIO()
    image.save(buffer)
    return [Product("qr_code", "imageUrl", buffer.getvalue(), "png")]


def find_and_replace(values: Mapping[str, InputValue]) -> list[Product]:
    """Every occurrence of `find` replaced by `replace` (empty when left out)."""
    text = _text(values, "text")
    return [_txt("result", text.replace(_text(values, "find"), _text(values, "replace")))]


def split_text(values: Mapping[str, InputValue]) -> list[Product]:
    """One text output per non-empty part (`part_1`, `part_2`, ...); a newline separates unless told otherwise."""
    separator = _text(values, "separator", "\n") or "\n"
    separator = separator.replace("\\n", "\n").replace("\\t", "\t")
    parts = [part.strip() for part in _text(values, "text").split(separator)]
    parts = [part for part in parts if part]
    if not parts:
        raise TechniqueFailure("invalid_input", "text: nothing to split")
    if len(parts) > MAX_PARTS:
        raise TechniqueFailure("invalid_input", f"text: more than {MAX_PARTS} parts")
    return [_txt(f"part_{index}", part) for index, part in enumerate(parts, start=1)]


def tone(values: Mapping[str, InputValue]) -> list[Product]:
    """A two-second mono 16-bit WAV sine tone at `frequency` Hz (440 unless given)."""
    text = _text(values, "frequency", "440").strip() or "440"
    try:
        frequency = float(text)
    except ValueError as exc:
        raise TechniqueFailure("invalid_input", "frequency: expected a number of hertz") from exc
    frames = TONE_SECONDS * TONE_RATE
    samples = (round(12000 * math.sin(2 * math.pi * frequency * n / TONE_RATE)) for n in range(frames))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(TONE_RATE)
        out.writeframes(struct.pack(f"<{frames}h", *samples))
    return [Product("audio", "audioUrl", buffer.getvalue(), "wav")]


def synthetic_echo(values: Mapping[str, InputValue]) -> list[Product]:
    """The prompt back, upper-cased: a cheap technique for large benchmark catalogs."""
    return [_txt("result", _text(values, "prompt").upper())]
