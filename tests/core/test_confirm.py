"""FLORA_CONFIRM_ABOVE in the run lifecycle: who is asked, what they see, and that nothing is sent without a yes."""

from __future__ import annotations

import pytest

from flora_mcp.api.models import Technique
from flora_mcp.core.confirm import Answer, Confirmation, confirmation_for
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from tests.core.test_multiple import multiple_kit
from tests.support import posts, settings_for


def technique(cost: float | None) -> Technique:
    return Technique(technique_id="tech_1", slug="paint", name="Paint", inputs=[], run_cost=cost)


@pytest.mark.parametrize(("threshold", "cost", "runs", "asked"), [
    pytest.param(None, 5.0, 1, False, id="unset: never"),
    pytest.param(0.0, 0.01, 1, True, id="0: every paid call"),
    pytest.param(0.0, 0.0, 1, False, id="0: a free call is not paid"),
    pytest.param(0.05, 0.05, 1, False, id="at the threshold: not above it"),
    pytest.param(0.05, 0.06, 1, True, id="above the threshold"),
    pytest.param(0.05, 0.02, 3, True, id="several values: their total counts"),
    pytest.param(0.05, 0.02, 2, False, id="several values below it in all"),
    pytest.param(100.0, None, 1, True, id="an unknown price is always asked"),
])
def test_who_is_asked(threshold: float | None, cost: float | None, runs: int, asked: bool) -> None:
    found = confirmation_for(threshold, "paint", technique(cost), {"prompt": "a cat"}, runs, session_spend=0.0)
    assert (found is not None) == asked


def test_the_person_sees_technique_price_inputs_and_the_session_spend() -> None:
    found = confirmation_for(0.0, "paint", technique(0.02), {"prompt": "a cat", "image": "data:image/png;base64,"
                             + "A" * 5000, "style": ["ink", "oil"]}, 2, session_spend=1.25)
    assert found is not None
    text = found.message()
    assert "Paint (paint)" in text and "2 runs at $0.02 each: $0.04 in all" in text
    assert "prompt=a cat" in text and "<image/png data URL, 5 KB>" in text and "[2 values: ink, oil]" in text
    assert "This session has spent $1.25 so far" in text and "FLORA_CONFIRM_ABOVE ($0.00)" in text
    assert "A" * 100 not in text
    assert found.question == "Run Paint for $0.04?"


def test_a_yes_is_for_one_price_and_one_set_of_inputs() -> None:
    def made(cost: float, prompt: str) -> Confirmation:
        found = confirmation_for(0.0, "paint", technique(cost), {"prompt": prompt}, 1, session_spend=0.0)
        assert found is not None
        return found

    assert made(0.02, "cat").fingerprint() == made(0.02, "cat").fingerprint()
    assert made(0.02, "cat").fingerprint() != made(0.03, "cat").fingerprint()
    assert made(0.02, "cat").fingerprint() != made(0.02, "dog").fingerprint()


class Asker:
    """A confirmer that answers as told and remembers what it was asked."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.asked: list[Confirmation] = []

    async def __call__(self, confirmation: Confirmation) -> Answer:
        self.asked.append(confirmation)
        return self.answer


@pytest.mark.anyio
@pytest.mark.parametrize(("answer", "status", "code"), [
    pytest.param("decline", "declined", "confirmation_declined", id="decline"),
    pytest.param("cancel", "declined", "confirmation_cancelled", id="cancel"),
    pytest.param("unavailable", "invalid", "confirmation_unavailable", id="nobody to ask"),
    pytest.param("later", "invalid", "confirmation_required", id="asked in a retry"),
])
async def test_without_a_yes_nothing_is_sent_or_held(sandbox: Sandbox, answer: Answer, status: str,
                                                    code: str) -> None:
    async with Toolkit(settings_for(sandbox, confirm_above=0, session_budget=1.0)) as kit:
        asker = Asker(answer)
        result = await kit.call("qr-code-generator", {"content": "no"}, confirm=asker)
        assert len(asker.asked) == 1
        assert (result.status, result.error_code) == (status, code)
        assert result.is_error is (status != "declined")  # declining is the person's choice, not a failure
        assert "Nothing was" in result.summary() and result.run_id is None
        assert posts(sandbox) == 0
        # the reservation went with the call
        assert await kit.runs.held() == 0.0 and await kit.runs.session_spend() == 0.0
        if status == "declined":
            assert result.charged_cost == 0.0 and "nothing was charged" in result.summary()


@pytest.mark.anyio
async def test_a_yes_runs_the_call_once_and_a_multiple_value_call_is_asked_once(sandbox: Sandbox) -> None:
    kit = await multiple_kit(sandbox, {"qr-code-generator": {"content"}}, confirm_above=0)
    try:
        asker = Asker("accept")
        one = await kit.call("qr-code-generator", {"content": "yes"}, confirm=asker)
        assert one.status == "completed" and posts(sandbox) == 1
        many = await kit.call("qr-code-generator", {"content": ["a", "b", "c"]}, confirm=asker)
        assert many.status == "completed" and posts(sandbox) == 4
        assert [c.runs for c in asker.asked] == [1, 3]
        assert asker.asked[1].price == pytest.approx(0.03)
        assert asker.asked[1].session_spend == pytest.approx(0.01)  # the first call's spend, shown to the person
    finally:
        await kit.aclose()


@pytest.mark.anyio
async def test_no_confirmer_refuses_and_says_how_to_proceed(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, confirm_above=0)) as kit:
        result = await kit.call("qr-code-generator", {"content": "library"})
    assert result.error_code == "confirmation_unavailable" and posts(sandbox) == 0
    assert "FLORA_CONFIRM_ABOVE" in (result.next_step or "") and "elicitation" in (result.next_step or "")


@pytest.mark.anyio
async def test_the_caps_refuse_before_anyone_is_asked_and_cheap_calls_go_unasked(sandbox: Sandbox) -> None:
    kit = await multiple_kit(sandbox, {"qr-code-generator": {"content"}}, confirm_above=0.02,
                             max_cost_per_call=0.04)
    try:
        asker = Asker("accept")
        capped = await kit.call("qr-code-generator", {"content": ["a", "b", "c", "d", "e"]}, confirm=asker)
        assert capped.error_code == "cost_cap_exceeded" and asker.asked == []
        cheap = await kit.call("qr-code-generator", {"content": "cheap"}, confirm=asker)
        assert cheap.status == "completed" and asker.asked == []
        asked = await kit.call("qr-code-generator", {"content": ["a", "b", "c"]}, confirm=asker)
        assert asked.status == "completed" and len(asker.asked) == 1
    finally:
        await kit.aclose()


@pytest.mark.anyio
async def test_compact_mode_asks_the_same_way(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, confirm_above=0, tools_mode="compact")) as kit:
        asker = Asker("decline")
        result = await kit.call("flora_run_technique", {"technique": "qr-code-generator",
                                                        "inputs": {"content": "compact"}}, confirm=asker)
    assert result.status == "declined" and len(asker.asked) == 1 and posts(sandbox) == 0
