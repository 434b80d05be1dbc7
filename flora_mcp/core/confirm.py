"""Whether a call needs the person's yes before anything is sent, and what they are shown.

`FLORA_CONFIRM_ABOVE` (USD per call): unset, never; `0`, every paid call; `X`, every call priced above X, and every
call whose price FLORA does not state. The run lifecycle asks `gate` after validation and the cost caps and before any
request leaves; a multiple-value call is asked once, for its total. How the person is asked belongs to the caller:
an MCP client's form (server/confirm.py), a terminal's y/N (cli/human.py), given as a `Confirmer`:

    the confirmer says   the call                                                    result (core/translator.py)
    accept               goes on
    decline / cancel     sends nothing                                               `declined`, not an error
    unavailable          sends nothing: this caller cannot ask anyone                `confirmation_unavailable`
    later                sends nothing now: asked in a retried request (2026-07-28)  `confirmation_required`

No confirmer at all is `unavailable`: a call that needs a yes never runs silently.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flora_mcp.api.models import Technique
from flora_mcp.core.results import ToolResult, format_usd
from flora_mcp.core.translator import confirmation_required, confirmation_unavailable, declined

__all__ = ["Answer", "Confirmation", "Confirmer", "confirmation_for", "gate"]

Answer = Literal["accept", "decline", "cancel", "unavailable", "later"]
Confirmer = Callable[["Confirmation"], Awaitable[Answer]]
"""Asks the person about one call; awaited before anything is sent."""

MAX_INPUTS_SHOWN = 8
MAX_VALUE_CHARS = 80


@dataclass(frozen=True)
class Confirmation:
    """One call that needs a yes: what it is, what it costs, and what the session spent so far."""

    tool: str
    technique_id: str
    technique_name: str
    runs: int
    per_run: float | None
    inputs: Mapping[str, Any]
    session_spend: float
    threshold: float

    @property
    def price(self) -> float | None:
        """The whole call's price: every run of a multiple-value call together; None when FLORA does not say."""
        return None if self.per_run is None else round(self.per_run * self.runs, 6)

    @property
    def question(self) -> str:
        """The one line a yes/no answers."""
        price = "at a price FLORA does not state" if self.price is None else f"for {format_usd(self.price)}"
        return f"Run {self.technique_name} {price}?"

    def message(self) -> str:
        """What the person sees: technique, price, the inputs in short, and the session's spend so far."""
        if self.price is None:
            cost = "Its price is unknown: FLORA does not state it."
        elif self.runs > 1:
            cost = (f"{self.runs} runs at {format_usd(self.per_run)} each: {format_usd(self.price)} in all "
                    "(one confirmation for the whole call).")
        else:
            cost = f"It costs {format_usd(self.price)}."
        return "\n".join([
            f"{self.technique_name} ({self.tool}) is about to run on FLORA and spend your credits. {cost}",
            "Inputs: " + (", ".join(self.inputs_in_short()) or "none"),
            f"This session has spent {format_usd(self.session_spend)} so far. You are asked because the call costs "
            f"more than FLORA_CONFIRM_ABOVE ({format_usd(self.threshold)}).",
            "Nothing is sent until you accept.",
        ])

    def inputs_in_short(self) -> list[str]:
        """`key=value` per input, long values cut and data: URLs named by size, at most MAX_INPUTS_SHOWN."""
        shown = [f"{key}={_short(value)}" for key, value in list(self.inputs.items())[:MAX_INPUTS_SHOWN]]
        if len(self.inputs) > MAX_INPUTS_SHOWN:
            shown.append(f"and {len(self.inputs) - MAX_INPUTS_SHOWN} more")
        return shown

    def fingerprint(self) -> str:
        """What a yes is a yes to: tool, technique, price and inputs. A confirmation given for one fingerprint
        (in a retried request, say) does not confirm a call whose price or inputs have changed since."""
        body = json.dumps([self.tool, self.technique_id, self.runs, self.per_run, dict(self.inputs)],
                          sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(body.encode()).hexdigest()[:32]


def confirmation_for(threshold: float | None, tool: str, technique: Technique, inputs: Mapping[str, Any],
                     runs: int, session_spend: float) -> Confirmation | None:
    """The confirmation this call needs under FLORA_CONFIRM_ABOVE, or None when it may go ahead unasked."""
    if threshold is None:
        return None
    cost = technique.run_cost
    if cost is not None and cost * runs <= threshold + 1e-9:
        return None  # at or below the threshold; with a threshold of 0, a free call
    return Confirmation(tool=tool, technique_id=technique.technique_id,
                        technique_name=technique.name or technique.slug or tool, runs=runs, per_run=cost,
                        inputs=dict(inputs), session_spend=round(session_spend, 6), threshold=threshold)


async def gate(threshold: float | None, tool: str, technique: Technique, inputs: Mapping[str, Any], runs: int,
               session_spend: float, confirmer: Confirmer | None) -> ToolResult | None:
    """Ask, when the call needs it: None to go on, or the result of a call that must not be sent.

    Args:
        threshold: FLORA_CONFIRM_ABOVE, None when unset.
        tool: the tool called.
        technique: its technique (the price per run is its `run_cost`).
        inputs: the call's validated arguments.
        runs: how many runs the call makes (a multiple-value call: all of them, confirmed once).
        session_spend: what the session spent so far, shown to the person.
        confirmer: how to ask; None when nobody can be asked.
    """
    confirmation = confirmation_for(threshold, tool, technique, inputs, runs, session_spend)
    if confirmation is None:
        return None
    answer: Answer = "unavailable" if confirmer is None else await confirmer(confirmation)
    if answer == "accept":
        return None
    if answer in ("decline", "cancel"):
        return declined(tool, technique, answer, confirmation.price)
    if answer == "later":
        return confirmation_required(tool, technique, confirmation.message())
    return confirmation_unavailable(tool, technique, confirmation.price, threshold=confirmation.threshold)


def _short(value: Any) -> str:
    if isinstance(value, list):
        return f"[{len(value)} values: " + ", ".join(_short(v) for v in value[:3]) + (", ..." * (len(value) > 3)) + "]"
    text = str(value)
    if text.startswith("data:"):
        kind = text[5:].split(";", 1)[0].split(",", 1)[0] or "data"
        return f"<{kind} data URL, {len(text) // 1024 + 1} KB>"
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 3] + "..."
