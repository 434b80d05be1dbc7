"""Each real technique's output, checked for the property it promises (sizes, ratios, pixels, payloads, text)."""

from __future__ import annotations

import base64
import io
import string
import wave
from pathlib import Path

import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageFilter, ImageStat
from sandbox_support import Api, client_for

from flora_mcp.sandbox import serve_sandbox
from flora_mcp.sandbox._catalog import technique_id_for
from flora_mcp.sandbox._imaging import change_aspect_ratio, parse_ratio
from flora_mcp.sandbox._texts import qr_code

pytestmark = pytest.mark.anyio


async def output_image(api: Api, technique: str, inputs: dict[str, str]) -> Image.Image:
    run = await api.run(technique, inputs)
    assert run["status"] == "completed", run
    [output] = run["outputs"]
    assert output["type"] == "imageUrl"
    return await api.image(output["url"])


def means(image: Image.Image) -> list[float]:
    return ImageStat.Stat(image.convert("RGB")).mean


async def test_cctv_cam_makes_a_grainy_grayscale_4_3_still_with_a_timestamp(shared_api: Api) -> None:
    street = await shared_api.image(shared_api.box.sample_url("street.png"))
    still = await output_image(shared_api, "cctv-cam", {"input_image": shared_api.box.sample_url("street.png")})
    assert still.size == (640, 480)
    red, green, blue = still.convert("RGB").split()
    assert ImageChops.difference(red, green).getbbox() is None
    assert ImageChops.difference(red, blue).getbbox() is None
    assert len(street.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 20  # the input had colour
    stamp_region = red.crop((0, 440, 640, 480))
    assert stamp_region.getextrema() == (0, 255)
    sky = red.crop((20, 100, 200, 110))
    assert ImageStat.Stat(sky).stddev[0] > 5  # grain, not a flat sky


async def test_cctv_cam_crops_a_portrait_to_4_3(shared_api: Api) -> None:
    still = await output_image(shared_api, "cctv-cam", {"input_image": shared_api.box.sample_url("portrait.png")})
    assert still.size == (640, 480)


@pytest.mark.parametrize(
    ("grade", "check"),
    [
        pytest.param("warm", lambda before, after: after[0] / after[2] > before[0] / before[2] * 1.2, id="warm"),
        pytest.param("cool", lambda before, after: after[2] / after[0] > before[2] / before[0] * 1.2, id="cool"),
        pytest.param("noir", lambda before, after: after[0] == after[1] == after[2], id="noir"),
        pytest.param("faded", lambda before, after: True, id="faded"),
    ],
)
async def test_color_grade_shifts_colour_the_asked_way(shared_api: Api, grade: str, check: object) -> None:
    url = shared_api.box.sample_url("street.png")
    before = means(await shared_api.image(url))
    graded = await output_image(shared_api, "color-grade-image", {"input_image": url, "grade": grade})
    assert graded.size == (640, 480)
    assert callable(check) and check(before, means(graded))
    if grade == "faded":
        assert ImageStat.Stat(graded).stddev[0] < ImageStat.Stat(await shared_api.image(url)).stddev[0]


async def test_color_grade_is_warm_when_no_grade_is_given(shared_api: Api) -> None:
    url = shared_api.box.sample_url("portrait.png")
    default = await output_image(shared_api, "color-grade-image", {"input_image": url})
    warm = await output_image(shared_api, "color-grade-image", {"input_image": url, "grade": "WARM"})
    assert ImageChops.difference(default, warm).getbbox() is None


@pytest.mark.parametrize(
    ("ratio", "fit", "sample"),
    [
        ("16:9", "crop", "street.png"),
        ("1:1", "crop", "portrait.png"),
        ("9:16", "pad", "street.png"),
        ("21:9", "pad", "logo.png"),
        ("4:6", "crop", "street.png"),
    ],
)
async def test_change_image_ar_gives_exactly_the_ratio(shared_api: Api, ratio: str, fit: str, sample: str) -> None:
    url = shared_api.box.sample_url(sample)
    source = await shared_api.image(url)
    result = await output_image(shared_api, "change-image-ar", {"input_image": url, "aspect_ratio": ratio, "fit": fit})
    a, b = (int(part) for part in ratio.split(":"))
    assert result.width * b == result.height * a
    if fit == "crop":
        assert result.width <= source.width and result.height <= source.height
    else:
        assert result.width >= source.width and result.height >= source.height
    assert ("A" in result.getbands()) == (sample == "logo.png")


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    a=st.integers(1, 100),
    b=st.integers(1, 100),
    fit=st.sampled_from(["crop", "pad"]),
)
def test_change_aspect_ratio_is_exact_for_any_size_and_ratio(width: int, height: int, a: int, b: int, fit: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, format="PNG")
    [product] = change_aspect_ratio({"input_image": buffer.getvalue(), "aspect_ratio": f"{a}:{b}", "fit": fit})
    result = Image.open(io.BytesIO(product.data))
    assert result.width * b == result.height * a
    assert parse_ratio(f"{a}:{b}") is not None


@pytest.mark.parametrize(("position", "half"), [("bottom", "lower"), ("top", "upper")])
async def test_add_text_writes_the_caption_where_asked(shared_api: Api, position: str, half: str) -> None:
    url = shared_api.box.sample_url("street.png")
    source = await shared_api.image(url)
    captioned = await output_image(
        shared_api, "add-text-to-image", {"input_image": url, "text": "HELLO", "position": position}
    )
    assert captioned.size == source.size
    box = ImageChops.difference(source.convert("RGB"), captioned.convert("RGB")).getbbox()
    assert box is not None
    _, top, _, bottom = box
    if half == "lower":
        assert top > source.height // 2
    else:
        assert bottom < source.height // 2


@pytest.mark.parametrize("content", ["hello", "https://flora.ai/techniques/cctv-cam?x=1&y=2", "Ünïcode ok"])
async def test_qr_code_decodes_back_to_the_content(shared_api: Api, content: str) -> None:
    code = await output_image(shared_api, "qr-code-generator", {"content": content})
    assert code.width == code.height
    [barcode] = zxingcpp.read_barcodes(code)
    assert barcode.text == content


@settings(max_examples=25, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " ", min_size=1, max_size=300))
def test_qr_code_round_trips_any_printable_text(content: str) -> None:
    [product] = qr_code({"content": content})
    [barcode] = zxingcpp.read_barcodes(Image.open(io.BytesIO(product.data)))
    assert barcode.text == content


async def test_side_by_side_places_both_images_at_the_same_height(shared_api: Api) -> None:
    street_url, portrait_url = shared_api.box.sample_url("street.png"), shared_api.box.sample_url("portrait.png")
    street = await shared_api.image(street_url)
    composite = await output_image(
        shared_api, "side-by-side-composite", {"left_image": street_url, "right_image": portrait_url}
    )
    assert composite.size == (640 + 360, 480)
    assert ImageChops.difference(composite.crop((0, 0, 640, 480)), street.convert("RGB")).getbbox() is None
    assert composite.getpixel((640 + 180, 5)) == pytest.approx((90, 120, 150), abs=3)


async def test_find_and_replace_returns_a_text_file(shared_api: Api) -> None:
    run = await shared_api.run(
        "find-and-replace-text", {"text": "one fish, two fish", "find": "fish", "replace": "cat"}
    )
    [output] = run["outputs"]
    assert output["type"] == "text"
    assert output["url"].endswith(".txt")
    assert await shared_api.text(output["url"]) == "one cat, two cat"
    deleted = await shared_api.run("find-and-replace-text", {"text": "a-b-c", "find": "-"})
    assert await shared_api.text(deleted["outputs"][0]["url"]) == "abc"


@pytest.mark.parametrize(
    ("inputs", "parts"),
    [
        ({"text": "alpha\n\nbeta\ngamma\n"}, ["alpha", "beta", "gamma"]),
        ({"text": "a; b ;c", "separator": ";"}, ["a", "b", "c"]),
        ({"text": "x|y", "separator": "\\n"}, ["x|y"]),
    ],
)
async def test_split_text_gives_one_text_output_per_part(
    shared_api: Api, inputs: dict[str, str], parts: list[str]
) -> None:
    run = await shared_api.run("split-text", inputs)
    assert [o["output_id"] for o in run["outputs"]] == [f"part_{i}" for i in range(1, len(parts) + 1)]
    assert [await shared_api.text(o["url"]) for o in run["outputs"]] == parts


async def test_soft_focus_has_no_slug_and_blurs(shared_api: Api) -> None:
    technique_id = technique_id_for("Soft Focus")
    url = shared_api.box.sample_url("street.png")
    source = await shared_api.image(url)
    blurred = await output_image(shared_api, technique_id, {"input_image": url, "radius": "6"})
    assert blurred.size == source.size

    def edges(image: Image.Image) -> float:
        return float(ImageStat.Stat(image.convert("L").filter(ImageFilter.FIND_EDGES)).mean[0])

    assert edges(blurred) < edges(source) / 2


async def test_tone_generator_makes_two_seconds_at_the_asked_frequency(shared_api: Api) -> None:
    run = await shared_api.run("tone-generator", {"frequency": "1000"})
    [output] = run["outputs"]
    assert output["type"] == "audioUrl"
    response = await shared_api.client.get(output["url"])
    assert response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as audio:
        frames = audio.readframes(audio.getnframes())
        assert audio.getnframes() / audio.getframerate() == 2.0
        samples = [int.from_bytes(frames[i : i + 2], "little", signed=True) for i in range(0, len(frames), 2)]
    crossings = sum(1 for x, y in zip(samples, samples[1:], strict=False) if x < 0 <= y)
    assert crossings / 2.0 == pytest.approx(1000, rel=0.02)


async def test_a_data_url_input_is_accepted(shared_api: Api) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, format="PNG")
    data_url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    still = await output_image(shared_api, "cctv-cam", {"input_image": data_url})
    assert still.size == (640, 480)


async def test_inputs_from_another_loopback_server_are_fetched(shared_api: Api) -> None:
    async with serve_sandbox() as other:
        url = other.sample_url("logo.png").replace("127.0.0.1", "localhost")
        result = await output_image(shared_api, "change-image-ar", {"input_image": url, "aspect_ratio": "2:1"})
        assert result.size == (256, 128)
        assert [r.route for r in other.requests] == ["files"]


@pytest.mark.parametrize(
    ("value", "code"),
    [
        pytest.param("http://127.0.0.1:9/photo.png", "input_fetch_error", id="closed-port"),
        pytest.param("SELF/files/samples/missing.png", "input_fetch_error", id="missing-file"),
        pytest.param("SELF/files/../../etc/passwd", "input_fetch_error", id="escape"),
        pytest.param("data:text/plain,hello", "invalid_input", id="not-an-image"),
        pytest.param("data:image/png;base64,@@@", "input_fetch_error", id="bad-base64"),
    ],
)
async def test_unusable_inputs_fail_the_run_not_the_request(shared_api: Api, value: str, code: str) -> None:
    value = value.replace("SELF", shared_api.box.origin)
    run = await shared_api.run("cctv-cam", {"input_image": value})
    assert run["status"] == "failed"
    assert run["error_code"] == code
    assert run["charged_cost"] == 0


async def test_the_sandbox_serves_its_samples_without_a_key(shared_api: Api) -> None:
    async with client_for(shared_api.box, "sk_wrong") as anonymous:
        response = await anonymous.get(shared_api.box.sample_url("logo.png"))
    assert response.status_code == 200
    logo = Image.open(io.BytesIO(response.content))
    assert logo.mode == "RGBA" and logo.size == (256, 256)
    assert logo.getpixel((0, 0))[3] == 0
    assert (await shared_api.client.get(f"{shared_api.box.origin}/files/samples/nope.png")).status_code == 404
    with pytest.raises(ValueError):
        shared_api.box.sample_url(str(Path("..") / "x"))
