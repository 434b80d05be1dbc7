"""The catalog's small rules, each pinned to its exact output: cutting text at a word, tool names (cut, suffixed,
the collision loop, the fallback), finding a technique by any of its names, the schema of a multiple-value input,
what counts as a URL or a path, a tool's title, and which error a failed load raises.

Found by mutation testing `core/catalog.py`: each assertion here failed on a mutant that every other test passed.
"""

from __future__ import annotations

import pytest

from flora_mcp.api.models import Technique, TechniqueIO
from flora_mcp.core.catalog import (
    MAX_MULTIPLE_VALUES,
    MAX_TOOL_NAME,
    Catalog,
    TechniqueTool,
    _cut,
    _first_leaf,
    _is_url_or_path,
    _short_hash,
    assign_names,
    input_property,
    tool_description,
    tool_name_base,
)

ELLIPSIS = "\u2026"


@pytest.mark.parametrize(("text", "limit", "cut"), [
    ("abc", 3, "abc"),  # exactly at the limit: left whole
    ("abcdefghijklmnop", 10, f"abcdefghi{ELLIPSIS}"),  # no space: cut at limit - 1, ellipsis makes the limit
    ("ab cdefgh ij klmnop", 12, f"ab cdefgh{ELLIPSIS}"),  # at the last space, not the first
    ("abcde fghijklmno", 10, f"abcde fgh{ELLIPSIS}"),  # a space at exactly half the limit is too early
    ("abcde fghijklmnop", 12, f"abcde fghij{ELLIPSIS}"),  # and so is one below half
    ("alpha, beta gamma", 10, f"alpha{ELLIPSIS}"),  # punctuation before the cut goes
    ("ALPHAX beta gamma", 10, f"ALPHAX{ELLIPSIS}"),  # only punctuation and spaces go
])
def test_cut_keeps_within_the_limit_at_a_word(text: str, limit: int, cut: str) -> None:
    assert _cut(text, limit) == cut
    assert len(cut) <= limit


def technique(technique_id: str, slug: str | None = None, name: str = "") -> Technique:
    return Technique(technique_id=technique_id, slug=slug, name=name, inputs=[])


def test_a_name_base_squeezes_invalid_runs_and_falls_back_to_technique() -> None:
    assert tool_name_base(technique("t1", slug="a  --  b")) == "a-b"
    assert tool_name_base(technique("t2", slug="-_Cam.Pro_-")) == "cam-pro"
    assert tool_name_base(technique("!!!", slug="???", name="...")) == "technique"


def test_a_long_slug_is_cut_at_a_boundary_and_given_the_ids_hash() -> None:
    dash_at_cut = technique("tech_long_1", slug="a" * 40 + "-" + "b" * 30)
    [(name, _)] = assign_names([dash_at_cut]).items()
    assert name == "a" * 40 + "-" + _short_hash(dash_at_cut)  # the cut's trailing dash goes, one dash stays
    letter_at_cut = technique("tech_long_2", slug="a" * 39 + "-" + "b" * 30)
    [(name, _)] = assign_names([letter_at_cut]).items()
    assert name == "a" * 39 + "-b-" + _short_hash(letter_at_cut) and len(name) == MAX_TOOL_NAME


def test_a_suffixed_name_taken_by_an_exact_slug_gets_a_longer_hash() -> None:
    first, second = technique("tb1", slug="Cam"), technique("tb2", slug="CAM")  # both "cam": both suffixed
    squatter = technique("tb3", slug=f"cam-{_short_hash(first)}")  # an exact slug keeps its name, so tb1 moves on
    names = {t.technique_id: name for name, t in assign_names([first, second, squatter]).items()}
    assert names == {"tb3": f"cam-{_short_hash(first)}", "tb1": f"cam-{_short_hash(first, 8)}",
                     "tb2": f"cam-{_short_hash(second)}"}


def test_find_takes_a_tool_name_slug_id_or_name_in_any_case() -> None:
    pro = technique("TECH_Pro_9", slug="Cam.Pro", name="Night Vision")
    plain = technique("tech_plain")  # no slug, no name: nothing but its id may find it
    catalog = Catalog.from_techniques([pro, plain])
    found = {ref: (tool.technique.technique_id if (tool := catalog.find(ref)) else None) for ref in (
        "cam-pro", "CAM.PRO", " cam.pro ", "tech_pro_9", "TECH_PRO_9", "night vision", "NIGHT VISION", "tech_plain",
        "xxxx", "", "nothing")}
    assert found == {"cam-pro": "TECH_Pro_9", "CAM.PRO": "TECH_Pro_9", " cam.pro ": "TECH_Pro_9",
                     "tech_pro_9": "TECH_Pro_9", "TECH_PRO_9": "TECH_Pro_9", "night vision": "TECH_Pro_9",
                     "NIGHT VISION": "TECH_Pro_9", "tech_plain": "tech_plain", "xxxx": None, "": None,
                     "nothing": None}


def test_a_multiple_value_input_is_an_array_of_at_most_ten_strings() -> None:
    io = TechniqueIO(id="prompt", name="Prompt", allow_multiple=True)
    assert input_property(io) == {
        "type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": MAX_MULTIPLE_VALUES,
        "description": f"Prompt. A list of up to {MAX_MULTIPLE_VALUES} values runs once per value."}
    assert input_property(TechniqueIO(id="prompt")) == {"type": "string", "minLength": 1, "description": "prompt."}


@pytest.mark.parametrize(("value", "accepted"), [
    ("file:///tmp/cat.png", True), ("data:image/png;base64,AAAA", True), ("https://cdn.example/cat.png", True),
    ("https:///no-host.png", False), ("ftp://example.com/cat.png", False), ("photos/cat.png", True),
])
def test_what_counts_as_a_url_or_a_path(value: str, accepted: bool) -> None:
    assert _is_url_or_path(value) is accepted


def test_a_tools_title_is_the_techniques_name_else_the_tool_name() -> None:
    named = TechniqueTool.build("cam-pro", technique("t1", slug="cam-pro", name="Night Vision")).definition
    assert named["title"] == named["annotations"]["title"] == "Night Vision"
    unnamed = TechniqueTool.build("cam-pro", technique("t2", slug="cam-pro")).definition
    assert unnamed["title"] == unnamed["annotations"]["title"] == "cam-pro"


def test_a_failed_load_raises_the_first_error_however_deep_it_is_grouped() -> None:
    first = ValueError("the first schema failed")
    group = BaseExceptionGroup("load", [BaseExceptionGroup("page", [first, KeyError("later")]), OSError("other")])
    assert _first_leaf(group) is first
    assert _first_leaf(BaseExceptionGroup("flat", [first])) is first


UPLOAD = "an https URL, a data: URL, or a local file path (uploaded for you; not on a hosted server)"
WITH_ELEMENT = ("an https URL, a data: URL, a local file path (uploaded for you; not on a hosted server), or a FLORA "
                "element id")


def test_a_description_names_each_inputs_kind_and_constraints_and_the_outputs_and_the_price() -> None:
    night_vision = Technique(
        technique_id="tech_nv", slug="night-vision", name="Night Vision", description="Makes a night-vision clip.",
        run_cost=0.25, inputs=[
            TechniqueIO(id="photo", name="Photo", type="imageUrl", description="The scene.", accepts_element=True,
                        specified_aspect_ratio="16:9"),
            TechniqueIO(id="clip", type="video_url", optional=True, specified_duration=5),
            TechniqueIO(id="track", name="track", type="audioUrl"),
            TechniqueIO(id="doc", type="document_url"),
            TechniqueIO(id="mood", name="Mood", allow_multiple=True, optional=True)],
        outputs=[TechniqueIO(id="out", name="Clip", type="videoUrl"), TechniqueIO(id="thumb", type="imageUrl")])
    assert tool_description(night_vision).split("\n") == [
        "Makes a night-vision clip.",
        "Inputs:",
        f"- photo (required): Photo. The scene. An image: {WITH_ELEMENT}. Required aspect ratio 16:9.",
        f"- clip (optional): clip. A video: {UPLOAD}. Required duration 5 s.",
        f"- track (required): track. An audio file: {UPLOAD}.",
        f"- doc (required): doc. A document: {UPLOAD}.",
        f"- mood (optional): Mood. A list of up to {MAX_MULTIPLE_VALUES} values runs once per value.",
        "Outputs: Clip (videoUrl), thumb (imageUrl).",
        "Costs $0.25 per run.",
        "Waits for the run and returns output URLs; a long run returns a run_id for flora_get_run.",
    ]


def test_a_technique_without_a_description_or_inputs_is_described_by_its_name_and_price_only() -> None:
    bare = Technique(technique_id="tech_bare", name="Night Cam", run_cost=0.01, inputs=[])
    assert tool_description(bare) == ("Night Cam\nCosts $0.01 per run.\nWaits for the run and returns output URLs; a "
                                      "long run returns a run_id for flora_get_run.")


def test_every_url_input_and_every_value_of_one_is_checked() -> None:
    tool = TechniqueTool.build("mixed", Technique(technique_id="tech_mixed", slug="mixed", inputs=[
        TechniqueIO(id="caption"), TechniqueIO(id="photo", type="imageUrl"),
        TechniqueIO(id="extras", type="image_url", allow_multiple=True, optional=True)]))
    errors = tool.validate(tool.normalize({"caption": "hi", "photo": "ftp://example.com/a.png",
                                           "extras": ["https://cdn.example/b.png", "gopher://example.com/c.png"]}))
    assert [(e.field, e.message) for e in errors] == [
        ("extras", "must be an https URL, a data: URL or a local file path, got 'gopher://example.com/c.png'"),
        ("photo", "must be an https URL, a data: URL or a local file path, got 'ftp://example.com/a.png'")]


def test_a_slug_of_exactly_the_longest_name_keeps_it_and_wins_a_collision() -> None:
    longest = "a" * MAX_TOOL_NAME
    exact, named = technique("tech_exact", slug=longest), technique("tech_named", name=longest.upper())
    names = {t.technique_id: name for name, t in assign_names([exact, named]).items()}
    assert names == {"tech_exact": longest, "tech_named": f"{longest[:MAX_TOOL_NAME - 7]}-{_short_hash(named)}"}
