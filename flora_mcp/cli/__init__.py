"""The `flora-mcp` command: serve MCP, and the verbs for people and pipelines (see README.md)."""

from __future__ import annotations

from flora_mcp.cli.main import main

__all__ = ["main"]
