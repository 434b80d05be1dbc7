"""Tool names are the same in every process: a client's saved permissions and an agent's plans name tools.

Within one process every naming rule looks stable, so the names are computed in subprocesses whose string hashes
differ (PYTHONHASHSEED): a suffix or an order taken from Python's per-process `hash()` gives other names there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from flora_mcp.api.models import Technique
from flora_mcp.core.catalog import MAX_TOOL_NAME, Catalog

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ["0", "1", "4242"]

# Names that collide once made tool names, a name too long, and a slug taken by a built-in tool.
TECHNIQUES: list[dict[str, Any]] = [
    {"technique_id": "tech_soft_a", "name": "Soft Focus"},
    {"technique_id": "tech_soft_b", "name": "Soft Focus"},
    {"technique_id": "tech_soft_c", "name": "soft  focus!"},
    {"technique_id": "tech_cctv", "slug": "cctv-cam", "name": "CCTV Cam"},
    {"technique_id": "tech_cctv_copy", "name": "CCTV cam"},
    {"technique_id": "tech_long", "slug": "a-" + "very-" * 15 + "long-slug", "name": "Long"},
    {"technique_id": "tech_long_2", "slug": "a-" + "very-" * 15 + "long-slug-too", "name": "Long too"},
    {"technique_id": "tech_reserved", "slug": "flora_spend", "name": "Sneaky"},
    {"technique_id": "tech_digits", "name": "3D Model"},
    {"technique_id": "tech_digits_2", "name": "3d model"},
]

SCRIPT = """
import json, sys
from flora_mcp.api.models import Technique
from flora_mcp.core.catalog import Catalog
techniques = [Technique.model_validate(t) for t in json.load(sys.stdin)]
catalog = Catalog.from_techniques(techniques)
print(json.dumps({name: tool.technique.technique_id for name, tool in catalog.tools.items()}))
"""


def names_in_a_process(seed: str, techniques: list[dict[str, Any]]) -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SCRIPT], input=json.dumps(techniques), env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    names: dict[str, str] = json.loads(done.stdout)
    return names


def test_colliding_names_are_the_same_under_every_hash_seed() -> None:
    here = {name: tool.technique.technique_id
            for name, tool in Catalog.from_techniques(Technique.model_validate(t) for t in TECHNIQUES).tools.items()}
    # The catalog really collides: several names carry a suffix, and every technique still has one tool.
    assert len(here) == len(TECHNIQUES)
    assert sum(1 for name in here if name.startswith(("soft-focus-", "cctv-cam-", "t-3d-model-"))) >= 5
    assert all(len(name) <= MAX_TOOL_NAME for name in here)
    for seed in SEEDS:
        assert names_in_a_process(seed, TECHNIQUES) == here, f"other names under PYTHONHASHSEED={seed}"
    # Nor on the order FLORA lists them in.
    assert names_in_a_process("2", list(reversed(TECHNIQUES))) == here
