"""The `flora-mcp` command: serve MCP, and the verbs for people and pipelines (see README.md)."""

from __future__ import annotations

import sys

# httpx imports its own command line (click, rich, pygments: ~45 ms, a twentieth of start-up) whenever rich is
# installed; it falls back to a stub when that import fails. flora-mcp never runs httpx's command line.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

from flora_mcp.cli.main import main  # noqa: E402

__all__ = ["main"]
