"""Sample input images drawn at start-up and served under `/files/samples/`.

`street.png` is a 640x480 colourful scene, `portrait.png` a 480x640 face, `logo.png` a 256x256 logo with alpha.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw

__all__ = ["SAMPLE_NAMES", "write_samples"]

SAMPLE_NAMES = ("street.png", "portrait.png", "logo.png")


def _street() -> Image.Image:
    image = Image.new("RGB", (640, 480))
    draw = ImageDraw.Draw(image)
    for y in range(300):
        draw.line([(0, y), (640, y)], fill=(70 + y // 6, 140 + y // 5, 235))
    draw.ellipse([500, 40, 580, 120], fill=(255, 210, 60))
    colours = [(200, 60, 50), (60, 160, 90), (230, 180, 40), (90, 90, 200), (180, 80, 160), (40, 170, 190)]
    for index, colour in enumerate(colours):
        left = 10 + index * 105
        top = 120 + (index * 37) % 90
        draw.rectangle([left, top, left + 95, 330], fill=colour)
        for wy in range(top + 15, 310, 30):
            for wx in (left + 15, left + 55):
                draw.rectangle([wx, wy, wx + 22, wy + 15], fill=(250, 240, 190))
    draw.rectangle([0, 330, 640, 480], fill=(60, 60, 65))
    for x in range(0, 640, 80):
        draw.rectangle([x + 10, 400, x + 50, 410], fill=(245, 245, 245))
    draw.rectangle([120, 350, 260, 390], fill=(220, 30, 30))
    draw.ellipse([135, 380, 160, 405], fill=(20, 20, 20))
    draw.ellipse([220, 380, 245, 405], fill=(20, 20, 20))
    return image


def _portrait() -> Image.Image:
    image = Image.new("RGB", (480, 640), (90, 120, 150))
    draw = ImageDraw.Draw(image)
    draw.rectangle([90, 470, 390, 640], fill=(40, 70, 130))
    draw.ellipse([140, 140, 340, 400], fill=(235, 190, 160))
    draw.pieslice([130, 110, 350, 330], 180, 360, fill=(70, 45, 30))
    draw.ellipse([190, 240, 220, 260], fill=(40, 40, 40))
    draw.ellipse([260, 240, 290, 260], fill=(40, 40, 40))
    draw.arc([200, 290, 280, 350], 20, 160, fill=(150, 50, 50), width=5)
    return image


def _logo() -> Image.Image:
    image = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse([16, 16, 240, 240], fill=(30, 160, 90, 255))
    for angle in range(0, 360, 60):
        draw.pieslice([56, 56, 200, 200], angle, angle + 30, fill=(250, 250, 250, 255))
    draw.ellipse([104, 104, 152, 152], fill=(250, 200, 40, 255))
    return image


@cache
def _sample_pngs() -> tuple[bytes, ...]:
    # Drawn once per process: every sandbox serves the same pictures.
    encoded = []
    for draw in (_street, _portrait, _logo):
        buffer = io.BytesIO()
        draw().save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return tuple(encoded)


def write_samples(directory: Path) -> None:
    """Write the sample images into `directory` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in zip(SAMPLE_NAMES, _sample_pngs(), strict=True):
        (directory / name).write_bytes(data)
