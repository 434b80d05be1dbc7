"""Image techniques built on Pillow: CCTV still, colour grade, aspect ratio, caption, composite, blur, text render.

Each function takes the fetched input values and returns the output files; they run in a worker thread.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from datetime import UTC, datetime

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps, UnidentifiedImageError

from flora_mcp.sandbox._catalog import InputValue, Product, TechniqueFailure

__all__ = [
    "GRADES",
    "MAX_SIDE",
    "add_text",
    "blur",
    "cctv_cam",
    "change_aspect_ratio",
    "color_grade",
    "flaky_render",
    "parse_ratio",
    "side_by_side",
]

GRADES = ("warm", "cool", "noir", "vivid", "faded")
MAX_SIDE = 4096
CCTV_SIZE = (640, 480)


def _image(values: Mapping[str, InputValue], key: str) -> Image.Image:
    data = values[key]
    if not isinstance(data, bytes):
        raise TechniqueFailure("invalid_input", f"{key}: expected an image")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise TechniqueFailure("invalid_input", f"{key}: not a readable image ({exc})") from exc
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE))
    return image


def _text(values: Mapping[str, InputValue], key: str, default: str = "") -> str:
    value = values.get(key, default)
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _png(image: Image.Image, output_id: str = "output_image") -> Product:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return Product(output_id, "imageUrl", buffer.getvalue(), "png")


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(size, 8))


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def cctv_cam(values: Mapping[str, InputValue]) -> list[Product]:
    """A grainy grayscale 640x480 surveillance still with a camera label and timestamp."""
    frame = ImageOps.fit(_rgb(_image(values, "input_image")), CCTV_SIZE).convert("L")
    frame = ImageOps.autocontrast(frame, cutoff=2)
    noise = Image.effect_noise(CCTV_SIZE, 48).point(lambda v: v // 2 + 64)
    frame = Image.blend(frame, noise, 0.25)
    draw = ImageDraw.Draw(frame)
    for y in range(0, CCTV_SIZE[1], 3):
        draw.line([(0, y), (CCTV_SIZE[0], y)], fill=0)
    stamp = datetime.now(UTC).strftime("CAM 01  %Y-%m-%d %H:%M:%S")
    draw.text((12, CCTV_SIZE[1] - 34), stamp, fill=255, font=_font(20), stroke_width=2, stroke_fill=0)
    draw.text((12, 10), "REC", fill=255, font=_font(20), stroke_width=2, stroke_fill=0)
    return [_png(frame.convert("RGB"))]


def _scale_bands(image: Image.Image, red: float, green: float, blue: float) -> Image.Image:
    r, g, b = image.split()
    return Image.merge(
        "RGB",
        [
            r.point(lambda v: min(255, round(v * red))),
            g.point(lambda v: min(255, round(v * green))),
            b.point(lambda v: min(255, round(v * blue))),
        ],
    )


def color_grade(values: Mapping[str, InputValue]) -> list[Product]:
    """Warm, cool, noir, vivid or faded look; warm when no grade is given."""
    image = _rgb(_image(values, "input_image"))
    grade = _text(values, "grade", "warm").strip().lower() or "warm"
    if grade == "warm":
        graded = _scale_bands(image, 1.15, 1.03, 0.82)
    elif grade == "cool":
        graded = _scale_bands(image, 0.82, 1.0, 1.15)
    elif grade == "noir":
        graded = ImageEnhance.Contrast(image.convert("L")).enhance(1.6).convert("RGB")
    elif grade == "vivid":
        graded = ImageEnhance.Color(image).enhance(1.8)
    elif grade == "faded":
        graded = ImageEnhance.Brightness(ImageEnhance.Contrast(image).enhance(0.6)).enhance(1.1)
    else:
        raise TechniqueFailure("invalid_input", f"grade: unknown grade {grade!r}")
    return [_png(graded)]


def parse_ratio(text: str) -> tuple[int, int] | None:
    """`"16:9"` -> (16, 9) in lowest terms; None when it is not a ratio of two positive integers up to 100."""
    for separator in (":", "x", "/"):
        left, sep, right = text.strip().partition(separator)
        if sep:
            break
    else:
        return None
    if not (left.strip().isdigit() and right.strip().isdigit()):
        return None
    width, height = int(left), int(right)
    if not (0 < width <= 100 and 0 < height <= 100):
        return None
    divisor = math.gcd(width, height)
    return width // divisor, height // divisor


def change_aspect_ratio(values: Mapping[str, InputValue]) -> list[Product]:
    """Centre-crop (default) or pad the image to exactly the asked ratio."""
    original = _image(values, "input_image")
    has_alpha = "A" in original.getbands() or "transparency" in original.info
    image = original.convert("RGBA")
    ratio = parse_ratio(_text(values, "aspect_ratio"))
    if ratio is None:
        raise TechniqueFailure("invalid_input", "aspect_ratio: expected a ratio such as 16:9")
    a, b = ratio
    fit = _text(values, "fit", "crop").strip().lower() or "crop"
    width, height = image.size
    unit = min(width // a, height // b)
    if fit == "pad" or unit == 0:
        unit = min(max(math.ceil(width / a), math.ceil(height / b)), MAX_SIDE // max(a, b))
        canvas = Image.new("RGBA", (unit * a, unit * b), (0, 0, 0, 255))
        image.thumbnail(canvas.size)
        canvas.paste(image, ((canvas.width - image.width) // 2, (canvas.height - image.height) // 2), image)
        result = canvas
    else:
        result = ImageOps.fit(image, (unit * a, unit * b))
    return [_png(result if has_alpha else result.convert("RGB"))]


def add_text(values: Mapping[str, InputValue]) -> list[Product]:
    """Caption the image: white text with a black outline at the top, centre or bottom."""
    image = _rgb(_image(values, "input_image"))
    text = _text(values, "text")
    position = _text(values, "position", "bottom").strip().lower() or "bottom"
    draw = ImageDraw.Draw(image)
    font = _font(max(12, image.height // 10))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=2)
    x = (image.width - (right - left)) // 2 - left
    margin = image.height // 20
    y = {"top": margin - top, "center": (image.height - (bottom - top)) // 2 - top}.get(
        position, image.height - margin - bottom
    )
    draw.text((x, y), text, fill=(255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    return [_png(image)]


def side_by_side(values: Mapping[str, InputValue]) -> list[Product]:
    """Both images scaled to the shorter one's height, left beside right."""
    left = _rgb(_image(values, "left_image"))
    right = _rgb(_image(values, "right_image"))
    height = min(left.height, right.height)
    scaled = [img.resize((max(1, round(img.width * height / img.height)), height)) for img in (left, right)]
    canvas = Image.new("RGB", (scaled[0].width + scaled[1].width, height))
    canvas.paste(scaled[0], (0, 0))
    canvas.paste(scaled[1], (scaled[0].width, 0))
    return [_png(canvas)]


def blur(values: Mapping[str, InputValue]) -> list[Product]:
    """Gaussian soft focus; radius 4 px unless given."""
    image = _image(values, "input_image").convert("RGBA")
    radius_text = _text(values, "radius", "4").strip() or "4"
    try:
        radius = float(radius_text)
    except ValueError as exc:
        raise TechniqueFailure("invalid_input", "radius: expected a number") from exc
    return [_png(image.filter(ImageFilter.GaussianBlur(max(0.0, min(radius, 50.0)))))]


def flaky_render(values: Mapping[str, InputValue]) -> list[Product]:
    """Renders the prompt as a 512x512 card; a prompt containing "fail" makes the provider fail."""
    prompt = _text(values, "prompt")
    if "fail" in prompt.lower():
        raise TechniqueFailure("provider_error", "The provider failed to complete the generation.")
    card = Image.new("RGB", (512, 512), (32, 24, 64))
    draw = ImageDraw.Draw(card)
    draw.multiline_text((24, 24), _wrap(prompt, 30), fill=(240, 240, 255), font=_font(28), spacing=8)
    return [_png(card)]


def _wrap(text: str, width: int) -> str:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\n".join(lines[:14])
