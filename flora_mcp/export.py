"""Public name of `flora_mcp.integrations.export`: tool definitions in the shape each LLM API expects."""

from __future__ import annotations

from flora_mcp.integrations.export import *  # noqa: F403
from flora_mcp.integrations.export import __all__ as __all__
