"""flora-mcp: every FLORA technique as a typed MCP tool.

Importing this package does no work: settings are read, and the SDK is imported, only by the code that needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flora_mcp._version import __version__

__all__ = ["Settings", "Toolkit", "ToolResult", "__version__"]

if TYPE_CHECKING:
    from flora_mcp.config import Settings
    from flora_mcp.core.results import ToolResult
    from flora_mcp.core.toolkit import Toolkit


def __getattr__(name: str) -> Any:
    # Lazy re-exports keep `import flora_mcp` cheap for the CLI and for start-up time.
    if name == "Toolkit":
        from flora_mcp.core.toolkit import Toolkit

        return Toolkit
    if name == "ToolResult":
        from flora_mcp.core.results import ToolResult

        return ToolResult
    if name == "Settings":
        from flora_mcp.config import Settings

        return Settings
    raise AttributeError(f"module 'flora_mcp' has no attribute {name!r}")
