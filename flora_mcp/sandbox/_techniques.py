"""The sandbox's techniques: FLORA-like schemas wired to the local Pillow, qrcode and text work.

`flaky-provider` fails with `provider_error` whenever its prompt contains "fail"; "Soft Focus" has no slug, so it is
reachable only by its `technique_id`. Synthetic techniques pad the catalog for benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flora_mcp.sandbox import _imaging, _texts
from flora_mcp.sandbox._catalog import Port, Technique
from flora_mcp.sandbox._errors import FieldError

__all__ = ["builtin_techniques", "synthetic_techniques"]

_IMAGE = Port("input_image", "Input Image", "imageUrl", "The image to transform")
_OUT_IMAGE = Port("output_image", "Output Image", "imageUrl")


def _one_of(field: str, allowed: tuple[str, ...]) -> Callable[[Mapping[str, str]], list[FieldError]]:
    def check(values: Mapping[str, str]) -> list[FieldError]:
        value = values.get(field)
        if value is not None and value.strip().lower() not in allowed:
            return [FieldError(field, f"Must be one of: {', '.join(allowed)}")]
        return []

    return check


def _number(field: str, low: float, high: float) -> Callable[[Mapping[str, str]], list[FieldError]]:
    def check(values: Mapping[str, str]) -> list[FieldError]:
        value = values.get(field)
        if value is None:
            return []
        try:
            number = float(value)
        except ValueError:
            return [FieldError(field, "Must be a number")]
        if not low <= number <= high:
            return [FieldError(field, f"Must be between {low:g} and {high:g}")]
        return []

    return check


def _all(*checks: Callable[[Mapping[str, str]], list[FieldError]]) -> Callable[[Mapping[str, str]], list[FieldError]]:
    return lambda values: [error for check in checks for error in check(values)]


def _check_ratio(values: Mapping[str, str]) -> list[FieldError]:
    if _imaging.parse_ratio(values.get("aspect_ratio", "")) is None:
        return [FieldError("aspect_ratio", "Must be a ratio such as 16:9 (two integers from 1 to 100)")]
    return []


def _check_qr(values: Mapping[str, str]) -> list[FieldError]:
    if len(values.get("content", "")) > 1000:
        return [FieldError("content", "Must be at most 1000 characters")]
    return []


def builtin_techniques() -> list[Technique]:
    """The real techniques, in catalog order; list items alternate between full and summary."""
    return [
        Technique(
            "cctv-cam",
            "CCTV Cam",
            "Turns a photo into a grainy grayscale 4:3 surveillance still with a timestamp overlay.",
            0.05,
            (_IMAGE,),
            (Port("output_image", "CCTV Still", "imageUrl", specified_aspect_ratio="4:3"),),
            _imaging.cctv_cam,
            full_in_list=False,
            estimated_seconds=2,
        ),
        Technique(
            "color-grade-image",
            "Color Grade Image",
            "Applies a colour grade (warm, cool, noir, vivid or faded) to an image.",
            0.02,
            (_IMAGE, Port("grade", "Grade", "text", "warm, cool, noir, vivid or faded (default warm)", optional=True)),
            (_OUT_IMAGE,),
            _imaging.color_grade,
            validate=_one_of("grade", _imaging.GRADES),
        ),
        Technique(
            "change-image-ar",
            "Change Image Aspect Ratio",
            "Crops or pads an image to an exact aspect ratio such as 16:9.",
            0.02,
            (
                _IMAGE,
                Port("aspect_ratio", "Aspect Ratio", "text", "Target ratio, for example 16:9 or 1:1"),
                Port("fit", "Fit", "text", "crop (default) or pad", optional=True),
            ),
            (_OUT_IMAGE,),
            _imaging.change_aspect_ratio,
            validate=_all(_check_ratio, _one_of("fit", ("crop", "pad"))),
            full_in_list=False,
        ),
        Technique(
            "add-text-to-image",
            "Add Text to Image",
            "Writes a caption onto an image.",
            0.01,
            (
                _IMAGE,
                Port("text", "Text", "text", "The caption"),
                Port("position", "Position", "text", "top, center or bottom (default bottom)", optional=True),
            ),
            (_OUT_IMAGE,),
            _imaging.add_text,
            validate=_one_of("position", ("top", "center", "bottom")),
        ),
        Technique(
            "qr-code-generator",
            "QR Code Generator",
            "Encodes text or a link as a square QR code image.",
            0.01,
            (Port("content", "Content", "text", "Text or URL to encode"),),
            (Port("qr_code", "QR Code", "imageUrl", specified_aspect_ratio="1:1"),),
            _texts.qr_code,
            validate=_check_qr,
            full_in_list=False,
        ),
        Technique(
            "side-by-side-composite",
            "Side-by-Side Composite",
            "Places two images next to each other at the same height.",
            0.02,
            (Port("left_image", "Left Image", "imageUrl"), Port("right_image", "Right Image", "imageUrl")),
            (Port("composite", "Composite", "imageUrl"),),
            _imaging.side_by_side,
        ),
        Technique(
            "find-and-replace-text",
            "Find and Replace Text",
            "Replaces every occurrence of a word or phrase in a text.",
            0.0,
            (
                Port("text", "Text", "text"),
                Port("find", "Find", "text", "The text to look for"),
                Port("replace", "Replace", "text", "The replacement (empty when left out)", optional=True),
            ),
            (Port("result", "Result", "text"),),
            _texts.find_and_replace,
            full_in_list=False,
        ),
        Technique(
            "split-text",
            "Split Text",
            "Splits a text into parts, one text output per part (part_1, part_2, ...).",
            0.0,
            (
                Port("text", "Text", "text"),
                Port("separator", "Separator", "text", "Where to split (default: newline)", optional=True),
            ),
            (Port("part", "Part", "text", "One output per non-empty part: part_1, part_2, ..."),),
            _texts.split_text,
        ),
        Technique(
            "flaky-provider",
            "Flaky Provider",
            'Renders a prompt as an image card; fails with provider_error when the prompt contains "fail".',
            0.05,
            (Port("prompt", "Prompt", "text"),),
            (Port("image", "Image", "imageUrl", specified_aspect_ratio="1:1"),),
            _imaging.flaky_render,
            full_in_list=False,
            estimated_seconds=3,
        ),
        Technique(
            None,
            "Soft Focus",
            "Blurs an image with a gaussian soft focus.",
            0.01,
            (_IMAGE, Port("radius", "Radius", "text", "Blur radius in pixels, 0-50 (default 4)", optional=True)),
            (_OUT_IMAGE,),
            _imaging.blur,
            validate=_number("radius", 0, 50),
        ),
        Technique(
            "tone-generator",
            "Tone Generator",
            "Makes a two-second sine tone.",
            0.01,
            (Port("frequency", "Frequency", "text", "Hertz, 20-20000 (default 440)", optional=True),),
            (Port("audio", "Audio", "audioUrl", specified_duration=_texts.TONE_SECONDS),),
            _texts.tone,
            validate=_number("frequency", 20, 20000),
            full_in_list=False,
        ),
    ]


def synthetic_techniques(count: int) -> list[Technique]:
    """`synthetic-0001` ... : text in, text out, cost 0.01; odd ones are listed as summaries."""
    return [
        Technique(
            f"synthetic-{index:04d}",
            f"Synthetic {index:04d}",
            f"Synthetic benchmark technique number {index}: returns the prompt upper-cased.",
            0.01,
            (Port("prompt", "Prompt", "text"),),
            (Port("result", "Result", "text"),),
            _texts.synthetic_echo,
            full_in_list=index % 2 == 0,
            estimated_seconds=0.5,
        )
        for index in range(1, count + 1)
    ]
