"""The Claude Desktop bundle's entry point: the settings a user filled in become flora-mcp's flags and variables.

Claude Desktop runs `manifest.json`'s `mcp_config` with `${user_config.KEY}` replaced by what the user entered. An
optional field left empty is not replaced: the variable arrives as the literal `${user_config.KEY}` (or as an empty
string), which flora-mcp would rightly refuse as an invalid number, so such variables are removed before it starts.
The sandbox switch arrives as `--sandbox=true` or `--sandbox=false`, since a manifest cannot add a flag conditionally.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping, Sequence

UNFILLED = "${user_config."
SANDBOX_SWITCH = "--sandbox="


def drop_unfilled_settings(environ: MutableMapping[str, str]) -> None:
    """Remove the FLORA_* variables that Claude Desktop left empty or unreplaced."""
    for name in [name for name, value in environ.items() if name.startswith("FLORA_")]:
        value = environ[name].strip()
        if not value or UNFILLED in value:
            del environ[name]


def flora_mcp_args(argv: Sequence[str]) -> list[str]:
    """flora-mcp's arguments: `--sandbox=true` becomes `--sandbox`; `--sandbox=false` (or unfilled) goes away."""
    args: list[str] = []
    for arg in argv:
        if arg.startswith(SANDBOX_SWITCH):
            if arg.removeprefix(SANDBOX_SWITCH).strip().lower() == "true":
                args.append("--sandbox")
        else:
            args.append(arg)
    return args


def main() -> None:
    drop_unfilled_settings(os.environ)
    from flora_mcp.cli import main as flora_mcp

    flora_mcp(flora_mcp_args(sys.argv[1:]))


if __name__ == "__main__":
    main()
