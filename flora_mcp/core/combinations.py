"""A call with multiple-value inputs is one run per combination of their values: counted first, then built."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["expand_runs", "run_count"]


def run_count(args: Mapping[str, Any]) -> int:
    """How many runs `expand_runs` would make: counted, not built (six inputs of ten values are a million maps)."""
    return math.prod(len(value) for value in args.values() if isinstance(value, list))


def expand_runs(args: Mapping[str, Any]) -> list[dict[str, str]]:
    """One input map per run: the product of every multiple-value input's values."""
    keys = list(args)
    values = [args[k] if isinstance(args[k], list) else [args[k]] for k in keys]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]
