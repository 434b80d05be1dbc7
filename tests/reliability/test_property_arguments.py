"""Generated arguments: each set is valid, or a clean isError that names exactly the bad fields; none reaches FLORA.

Valid sets are stopped right after validation by a zero cost cap, so the property runs over a thousand calls through
the whole call path without creating a run; the sandbox's request log proves no create request was sent.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flora_mcp.core.catalog import URL_TYPES
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import serve_sandbox
from tests.support import sandbox_config, settings_for

EXAMPLES = 1200

NON_STRINGS = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                        st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                              max_size=1))
GOOD_URL = st.sampled_from(["https://example.com/a.png", "http://127.0.0.1:9/x.png",
                            "data:image/png;base64,iVBORw0KGgo=", "https://cdn.flora.ai/p/a%20b.jpg?x=1"])
BAD_URL = st.sampled_from(["not a url", "ftp://example.com/a.png", "example.com/a.png", "/tmp/a.png",
                           "file:///etc/passwd", "javascript:alert(1)", "https://"])
GOOD_TEXT = st.text(min_size=1, max_size=40)


def good_value(input_type: str) -> st.SearchStrategy[Any]:
    return GOOD_URL if input_type in URL_TYPES else GOOD_TEXT


def bad_value(input_type: str) -> st.SearchStrategy[Any]:
    bad: list[st.SearchStrategy[Any]] = [NON_STRINGS, st.just("")]
    if input_type in URL_TYPES:
        bad.append(BAD_URL)
    return st.one_of(*bad)


@st.composite
def call(draw: st.DrawFn, tools: list[dict[str, Any]]) -> tuple[str, dict[str, Any], set[str]]:
    """A tool, generated arguments, and the fields that must be reported as bad."""
    tool = draw(st.sampled_from(tools))
    args: dict[str, Any] = {}
    bad: set[str] = set()
    for name, (input_type, optional) in tool["inputs"].items():
        if draw(st.booleans()) if optional else draw(st.integers(0, 15)) == 0:
            if not optional:
                bad.add(name)  # a required input left out
            continue
        ok = draw(st.integers(0, 7)) != 0
        args[name] = draw(good_value(input_type) if ok else bad_value(input_type))
        if not ok:
            bad.add(name)
    if draw(st.integers(0, 11)) == 0:
        extra = draw(st.sampled_from(["unknown_input", "Input_Image", "prompt2"]))
        if extra not in tool["inputs"]:
            args[extra] = "x"
            bad.add(extra)
    return tool["name"], args, bad


@pytest.mark.anyio
async def test_generated_arguments_are_valid_or_a_clean_error_naming_each_bad_field() -> None:
    async with serve_sandbox(sandbox_config(estimate_scale=0.0)) as box, \
            Toolkit(settings_for(box, max_cost_per_call=0.0)) as kit:
        tools = [
            {"name": t.name, "inputs": {io.id: (io.type, io.optional) for io in t.technique.inputs or []}}
            for t in kit.catalog.tools.values() if (t.technique.run_cost or 0) > 0 and t.technique.inputs
        ]
        seen = {"valid": 0, "invalid": 0}

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(call(tools))
        def check(case: tuple[str, dict[str, Any], set[str]]) -> None:
            name, args, bad = case
            result = anyio.from_thread.run(kit.call, name, args)
            if bad:
                seen["invalid"] += 1
                assert result.is_error and result.status == "invalid", (args, result)
                assert result.error_code == "invalid_arguments"
                assert {f.field.split(".")[0] for f in result.error_fields} == bad, (args, result.error_fields)
            else:
                seen["valid"] += 1
                # Valid arguments pass validation and meet the zero cost cap: refused before any request.
                assert result.error_code == "cost_cap_exceeded", (args, result)

        await anyio.to_thread.run_sync(check)
        assert seen["valid"] > 100 and seen["invalid"] > 100, seen
        assert not box.requests_for("create_technique_run")
        assert not box.requests_for("create_run")
