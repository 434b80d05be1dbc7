from __future__ import annotations

import re

import pytest

from flora_mcp.api.models import Technique
from flora_mcp.core.catalog import (
    MAX_TOOL_NAME,
    Catalog,
    assign_names,
    format_usd,
    input_schema,
    technique_filter,
    tool_description,
)

NAME_RULE = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")


def tech(tid: str, slug: str | None = None, name: str = "", **kw: object) -> Technique:
    return Technique.model_validate({"technique_id": tid, "slug": slug, "name": name, **kw})


@pytest.mark.parametrize(
    ("slug", "name", "tid", "expected"),
    [
        pytest.param("cctv-cam", "CCTV Cam", "tech_1", "cctv-cam", id="slug-as-is"),
        pytest.param(None, "Color Grade: Warm!", "tech_2", "color-grade-warm", id="from-name"),
        pytest.param(None, "", "tech_ABC", "tech_abc", id="from-id"),
        pytest.param("3d-render", "3D", "tech_3", "t-3d-render", id="letter-first"),
        pytest.param("Upper_Case.Slug", "x", "tech_4", "upper_case-slug", id="lowercased-dots-replaced"),
        pytest.param(None, "Ünïcode   spaces", "tech_5", "n-code-spaces", id="non-ascii-dropped"),
    ],
)
def test_tool_name_comes_from_slug_then_name_then_id(slug: str | None, name: str, tid: str, expected: str) -> None:
    names = assign_names([tech(tid, slug, name)])
    assert list(names) == [expected]


def test_long_names_are_cut_with_a_stable_hash_suffix() -> None:
    t = tech("tech_long", "a-" + "very-long-slug-" * 6, "x")
    first = list(assign_names([t]))[0]
    again = list(assign_names([tech("tech_other", "zzz"), t]))
    assert len(first) <= MAX_TOOL_NAME and NAME_RULE.match(first)
    assert first in again
    assert re.search(r"-[0-9a-f]{6}$", first)


def test_colliding_names_are_unique_and_an_exact_slug_keeps_its_name() -> None:
    techniques = [tech("tech_a", "cctv-cam", "CCTV Cam"), tech("tech_b", None, "cctv cam"),
                  tech("tech_c", None, "CCTV  Cam")]
    names = assign_names(techniques)
    assert len(names) == 3
    assert names["cctv-cam"].technique_id == "tech_a"
    assert all(NAME_RULE.match(n) for n in names)
    # Order of listing does not change any name.
    assert set(assign_names(list(reversed(techniques)))) == set(names)


def test_reserved_names_are_never_taken_by_a_technique() -> None:
    names = assign_names([tech("tech_x", "flora_get_run", "Sneaky")])
    assert "flora_get_run" not in names


def test_input_schema_is_flat_typed_and_closed() -> None:
    t = tech("tech_1", "cctv-cam", "CCTV Cam", run_cost=0.05, inputs=[
        {"id": "input_image", "name": "Input Image", "type": "imageUrl", "specified_aspect_ratio": "16:9"},
        {"id": "caption", "name": "Caption", "type": "text", "optional": True, "description": "Overlay text"},
        {"id": "clip", "name": "Clip", "type": "video_url", "specified_duration": 5},
        {"id": "frames", "name": "Frames", "type": "imageUrl", "allow_multiple": True},
        {"id": "element", "name": "Element", "type": "imageUrl", "accepts_element": True},
    ])
    schema = input_schema(t)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == ["input_image", "clip", "frames", "element"]
    props = schema["properties"]
    # A local path is no URI: no `format: uri`, which would make a client refuse one; the description says what goes.
    assert props["input_image"]["type"] == "string" and "format" not in props["input_image"]
    assert "16:9" in props["input_image"]["description"]
    assert "local file path" in props["input_image"]["description"]
    assert "format" not in props["caption"] and "Overlay text" in props["caption"]["description"]
    assert "format" not in props["clip"] and "5 s" in props["clip"]["description"]
    assert props["frames"]["type"] == "array" and "format" not in props["frames"]["items"]
    assert "format" not in props["element"] and "element id" in props["element"]["description"]
    text = str(schema)
    assert "$ref" not in text and "anyOf" not in text


def test_description_states_inputs_and_price() -> None:
    t = tech("tech_1", "cctv-cam", "CCTV Cam", run_cost=0.05, description="Surveillance look.",
             inputs=[{"id": "input_image", "name": "Input Image", "type": "imageUrl"}])
    text = tool_description(t)
    assert text.startswith("Surveillance look.")
    assert "input_image (required)" in text
    assert "Costs $0.05 per run." in text


@pytest.mark.parametrize(("amount", "text"), [(0.05, "$0.05"), (0.005, "$0.005"), (1, "$1.00"), (1.2, "$1.20"),
                                              (0, "$0.00"), (None, "an unknown amount")])
def test_format_usd(amount: float | None, text: str) -> None:
    assert format_usd(amount) == text


def test_tool_definition_has_meta_annotations_and_output_schema() -> None:
    catalog = Catalog.from_techniques([tech("tech_1", "cctv-cam", "CCTV Cam", run_cost=0.05, inputs=[])])
    d = catalog.get("cctv-cam").definition  # type: ignore[union-attr]
    assert d["title"] == "CCTV Cam"
    assert d["_meta"] == {"technique_id": "tech_1", "slug": "cctv-cam", "run_cost": 0.05}
    assert d["annotations"]["openWorldHint"] is True and d["annotations"]["readOnlyHint"] is False
    assert d["annotations"]["idempotentHint"] is False and d["annotations"]["destructiveHint"] is False
    assert d["outputSchema"]["type"] == "object"


VALIDATION = Technique.model_validate({"technique_id": "tech_v", "slug": "v", "name": "V", "inputs": [
    {"id": "image", "name": "Image", "type": "imageUrl"},
    {"id": "prompt", "name": "Prompt", "type": "text", "optional": True},
    {"id": "frames", "name": "Frames", "type": "imageUrl", "allow_multiple": True, "optional": True},
]})


@pytest.mark.parametrize(
    ("arguments", "fields"),
    [
        pytest.param({"image": "https://x/a.png"}, [], id="valid"),
        pytest.param({"image": "data:image/png;base64,AAAA", "prompt": "hi"}, [], id="data-url"),
        pytest.param({}, ["image"], id="missing"),
        pytest.param({"image": "https://x/a.png", "nope": "1"}, ["nope"], id="unknown"),
        pytest.param({"image": 5}, ["image"], id="wrong-type"),
        pytest.param({"image": "https:///no-host.png"}, ["image"], id="url-without-host"),
        pytest.param({"image": "photo.png"}, [], id="a-local-path-is-checked-later"),
        pytest.param({"image": "ftp://x/a.png"}, ["image"], id="bad-scheme"),
        pytest.param({"image": ""}, ["image"], id="empty"),
        pytest.param({"prompt": 1, "zzz": 2}, ["image", "prompt", "zzz"], id="every-bad-field-named"),
        pytest.param({"image": "https://x/a.png", "frames": "https://x/b.png"}, [], id="lone-value-for-multiple"),
        pytest.param({"image": "https://x/a.png", "frames": []}, ["frames"], id="empty-list"),
    ],
)
def test_validation_names_every_bad_field(arguments: dict[str, object], fields: list[str]) -> None:
    tool = Catalog.from_techniques([VALIDATION]).get("v")
    assert tool is not None
    problems = tool.validate(tool.normalize(arguments))
    assert sorted({p.field for p in problems}) == fields


@pytest.mark.parametrize(
    ("spec", "kept"),
    [
        (None, ["cctv-cam", "cctv-beta", "qr-code"]),
        ("cctv-*", ["cctv-cam", "cctv-beta"]),
        ("cctv-*,!*-beta", ["cctv-cam"]),
        ("!qr-*", ["cctv-cam", "cctv-beta"]),
        ("tech_qr", ["qr-code"]),
    ],
)
def test_technique_filter_globs(spec: str | None, kept: list[str]) -> None:
    ts = [tech("tech_c", "cctv-cam"), tech("tech_b", "cctv-beta"), tech("tech_qr", "qr-code")]
    accept = technique_filter(spec)
    assert [t.slug for t in ts if accept(t)] == kept
