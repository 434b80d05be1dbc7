"""Public name of `flora_mcp.integrations.adapters`: one tool call from an LLM response to the next request's block."""

from __future__ import annotations

from flora_mcp.integrations.adapters import *  # noqa: F403
from flora_mcp.integrations.adapters import __all__ as __all__
