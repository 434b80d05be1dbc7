"""Tool descriptions stay under 2,048 characters (Claude Code cuts there) and always keep the price.

The longest description is reported (printed by the tests, also without `-s`) for the sandbox's catalog, a
sandbox of 1,000 techniques, and a generated 1,000-technique catalog whose FLORA texts run far past the limit.
"""

from __future__ import annotations

import random

import pytest

from flora_mcp.api.models import Technique, TechniqueIO
from flora_mcp.core.catalog import MAX_DESCRIPTION, Catalog, tool_description
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import serve_sandbox
from tests.support import sandbox_config, settings_for

CLAUDE_CODE_CUT = 2048
WORDS = ("cinematic", "grain", "palette", "composition", "reference", "lighting", "subject", "texture", "camera",
         "background", "portrait", "motion", "style", "strength", "seed", "frame")


def prose(rng: random.Random, length: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < length:
        words.append(rng.choice(WORDS))
    return (" ".join(words).capitalize() + ".")[:length]


def generated_catalog(count: int = 1000, seed: int = 14) -> list[Technique]:
    """Techniques of every size: some with a few words, some with 8,000-character descriptions and 40 inputs."""
    rng = random.Random(seed)
    techniques = []
    for index in range(count):
        size = rng.choice([20, 300, 1500, 2500, 8000])
        inputs = [TechniqueIO(id=f"input_{n}", name=f"Input {n}", type=rng.choice(["text", "imageUrl", "videoUrl"]),
                              description=prose(rng, rng.choice([0, 80, 600])), optional=rng.random() < 0.4)
                  for n in range(rng.choice([0, 1, 3, 12, 40]))]
        outputs = [TechniqueIO(id=f"out_{n}", name=prose(rng, 30), type="imageUrl") for n in range(rng.choice([1, 30]))]
        techniques.append(Technique(technique_id=f"tech_gen{index:04d}", slug=f"generated-{index:04d}",
                                    name=f"Generated {index}", description=prose(rng, size), run_cost=0.25,
                                    inputs=inputs, outputs=outputs))
    return techniques


def longest(catalog: Catalog) -> tuple[str, int]:
    name, tool = max(catalog.tools.items(), key=lambda item: len(item[1].definition["description"]))
    return name, len(tool.definition["description"])


def test_a_description_far_too_long_keeps_the_price_and_the_run_id_line() -> None:
    technique = Technique(technique_id="tech_long", slug="long", name="Long", description="word " * 3000,
                          run_cost=1.5, inputs=[TechniqueIO(id=f"i{n}", description="x " * 400) for n in range(60)],
                          outputs=[TechniqueIO(id="o", type="imageUrl")])
    text = tool_description(technique)
    assert len(text) <= MAX_DESCRIPTION < CLAUDE_CODE_CUT
    assert "Costs $1.50 per run." in text and "flora_get_run" in text and "Outputs: o (imageUrl)." in text
    assert text.startswith("word word") and "\u2026" in text  # the technique's own text was cut, and says so
    assert "more inputs: see the input schema" in text


def test_a_short_description_is_left_whole() -> None:
    technique = Technique(technique_id="tech_s", slug="s", name="S", description="Makes a QR code.", run_cost=0.01,
                          inputs=[TechniqueIO(id="content", description="The text to encode")])
    text = tool_description(technique)
    assert text == ("Makes a QR code.\nInputs:\n- content (required): content. The text to encode.\n"
                    "Costs $0.01 per run.\nWaits for the run and returns output URLs; a long run returns a run_id "
                    "for flora_get_run.")


def test_the_longest_of_a_generated_1000_technique_catalog_is_under_the_cut(capsys: pytest.CaptureFixture[str]
                                                                            ) -> None:
    techniques = generated_catalog()
    catalog = Catalog.from_techniques(techniques)
    name, length = longest(catalog)
    with capsys.disabled():
        print(f"\nlongest description, generated 1,000-technique catalog: {name}, {length} characters")  # noqa: T201
    assert len(catalog.tools) == 1000
    assert length <= MAX_DESCRIPTION < CLAUDE_CODE_CUT
    assert sum(len(t.description or "") > CLAUDE_CODE_CUT for t in techniques) > 100  # the texts did run past it
    assert all("Costs $0.25 per run." in tool.definition["description"] for tool in catalog.tools.values())


@pytest.mark.anyio
@pytest.mark.parametrize("extra", [0, 1000], ids=["sandbox", "sandbox-1000"])
async def test_the_longest_served_description_is_under_the_cut(extra: int, capsys: pytest.CaptureFixture[str]) -> None:
    async with serve_sandbox(sandbox_config(extra_techniques=extra)) as box, \
            Toolkit(settings_for(box, tools_mode="full")) as kit:
        definitions = kit.tool_definitions()
        assert len(definitions) >= extra
        tool = max(definitions, key=lambda d: len(d["description"]))
        with capsys.disabled():
            print(f"\nlongest description, sandbox with {extra} extra techniques: {tool['name']}, "  # noqa: T201
                  f"{len(tool['description'])} characters")
        assert len(tool["description"]) < CLAUDE_CODE_CUT
