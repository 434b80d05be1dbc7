"""A call of several multiple-value inputs is counted before anything is built: too many runs are refused at once.

Six inputs of ten values each ask for a million runs: refused by counting (10^6 > MAX_MULTIPLE_VALUES), not by
building a million argument maps first (that took 318 MB; seven inputs would take 3 GB).
"""

from __future__ import annotations

import tracemalloc

import pytest

from flora_mcp.api.models import Technique, TechniqueIO
from flora_mcp.core.catalog import MAX_MULTIPLE_VALUES, Catalog
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from tests.support import posts

INPUTS = 6
MEMORY_BOUND = 8 * 1024 * 1024
"""Bytes a refusal may allocate at its peak; a million argument maps take about 300 MB."""


def wide_technique(inputs: int) -> Technique:
    return Technique(technique_id="tech_wide", slug="wide", name="Wide", run_cost=0.01,
                     inputs=[TechniqueIO(id=f"in{n}", type="text", allow_multiple=True) for n in range(inputs)])


@pytest.mark.anyio
async def test_too_many_combinations_are_refused_by_counting_them(sandbox: Sandbox, toolkit: Toolkit) -> None:
    inputs = INPUTS
    toolkit.set_catalog(Catalog.from_techniques([wide_technique(inputs)]))
    arguments = {f"in{n}": [f"v{v}" for v in range(MAX_MULTIPLE_VALUES)] for n in range(inputs)}
    tracemalloc.start()
    try:
        result = await toolkit.call("wide", arguments)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status == "invalid" and result.error_code == "invalid_arguments"
    assert f"{MAX_MULTIPLE_VALUES ** inputs} runs requested" in (result.error_message or "")
    assert peak < MEMORY_BOUND, f"the refusal allocated {peak / 1e6:.0f} MB: the combinations were built"
    assert posts(sandbox) == 0


@pytest.mark.anyio
async def test_combinations_within_the_cap_still_run_once_each(sandbox: Sandbox, toolkit: Toolkit) -> None:
    technique = toolkit.catalog.tools["qr-code-generator"].technique
    inputs = [io.model_copy(update={"allow_multiple": True}) for io in technique.inputs or []]
    toolkit.set_catalog(Catalog.from_techniques([technique.model_copy(update={"inputs": inputs})]))
    result = await toolkit.call("qr-code-generator", {"content": ["a", "b", "c"]})
    assert result.status == "completed" and len(result.runs) == 3
    assert sorted(r.inputs["content"] for r in sandbox.runs) == ["a", "b", "c"]
