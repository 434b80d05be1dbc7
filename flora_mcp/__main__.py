"""`python -m flora_mcp`: the `flora-mcp` command."""

from __future__ import annotations

from flora_mcp.cli import main

if __name__ == "__main__":
    main()
