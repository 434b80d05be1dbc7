"""The `flora-mcp` command: serve MCP (stdio, HTTP, SSE), and verbs for people and pipelines.

Nothing happens at import: `main()` reads flags and the environment, then runs one coroutine.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import anyio
from pydantic import ValidationError

from flora_mcp._version import __version__
from flora_mcp.cli.sandbox import settings_with_sandbox
from flora_mcp.config import Settings
from flora_mcp.core.startup import StartupError, open_toolkit

__all__ = ["main", "settings_from_args"]

log = logging.getLogger("flora_mcp")

# Flag -> settings field; each flag wins over its FLORA_* variable.
_SETTING_FLAGS: dict[str, tuple[str, type, str]] = {
    "--base-url": ("base_url", str, "FLORA API base URL (FLORA_BASE_URL)."),
    "--workspace-id": ("workspace_id", str, "Run through POST /runs/technique in this workspace."),
    "--poll-interval": ("poll_interval", float, "Shortest seconds between polls (FLORA_POLL_INTERVAL)."),
    "--max-wait": ("max_wait", float, "Longest seconds a call waits for its run (FLORA_MAX_WAIT)."),
    "--run-timeout": ("run_timeout", float, "Stop waiting on a run after this many seconds (FLORA_RUN_TIMEOUT)."),
    "--log-level": ("log_level", str, "DEBUG, INFO, WARNING or ERROR (FLORA_LOG_LEVEL)."),
    "--journal": ("journal", str, "Run journal path, ':memory:' for none (FLORA_JOURNAL)."),
    "--techniques": ("techniques", str, "Slug globs to include/exclude: 'cctv-*,!*-beta' (FLORA_TECHNIQUES)."),
    "--query": ("query", str, "Only techniques matching this search (FLORA_QUERY)."),
    "--tools-mode": ("tools_mode", str, "full, compact or auto (FLORA_TOOLS_MODE)."),
    "--max-cost-per-call": ("max_cost_per_call", float, "Refuse calls costing more USD (FLORA_MAX_COST_PER_CALL)."),
    "--session-budget": ("session_budget", float, "Refuse calls past this USD spend (FLORA_SESSION_BUDGET)."),
}


def _settings_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("FLORA settings (flags win over FLORA_* environment variables)")
    group.add_argument("--sandbox", action="store_true",
                       help="Start the embedded FLORA sandbox on loopback and use it (no key needed).")
    for flag, (field, kind, text) in _SETTING_FLAGS.items():
        group.add_argument(flag, dest=field, type=kind, default=None, help=text)
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: serving flags, FLORA settings flags, and the verbs."""
    parent = _settings_parent()
    serve_opts = argparse.ArgumentParser(add_help=False)
    serve_group = serve_opts.add_argument_group("serving")
    serve_group.add_argument("--transport", choices=["stdio", "http", "sse"], default="stdio")
    serve_group.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1).")
    serve_group.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000).")
    serve_group.add_argument("--stateless", action="store_true", help="Stateless streamable HTTP (replicas).")
    serve_group.add_argument("--per-user-keys", action="store_true",
                             help="Hosted: each client sends its own FLORA key (Authorization or X-Flora-Api-Key).")
    serve_group.add_argument("--allowed-host", action="append", default=[], metavar="HOST",
                             help="Hosted: also accept this Host header (repeatable).")
    serve_group.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN",
                             help="Hosted: also accept this Origin (repeatable).")

    parser = argparse.ArgumentParser(
        prog="flora-mcp", parents=[parent, serve_opts],
        description="Every FLORA technique as a typed MCP tool. Without a command: serve MCP.")
    parser.add_argument("--version", action="version", version=f"flora-mcp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", parents=[parent, serve_opts], help="Serve MCP (the default).")
    export = sub.add_parser("export-tools", parents=[parent], help="Print the tool definitions as JSON.")
    export.add_argument("--format", choices=["mcp", "anthropic", "openai", "gemini"], default="mcp")
    sub.add_parser("techniques", parents=[parent], help="A table of the techniques: name, tool, inputs, cost.")
    describe = sub.add_parser("describe", parents=[parent], help="One technique's inputs, schema and cost.")
    describe.add_argument("technique", help="Tool name, slug, technique id or name.")
    run = sub.add_parser("run", parents=[parent], help="Run a technique: flora-mcp run cctv-cam input_image=URL")
    run.add_argument("technique", help="Tool name, slug, technique id or name.")
    run.add_argument("inputs", nargs="*", metavar="KEY=VALUE", help="Inputs; repeat a key for several values.")
    run.add_argument("--download", metavar="DIR", help="Save the outputs into DIR.")
    run.add_argument("--json", action="store_true", help="Print the result as JSON.")
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings: environment first, then every flag given."""
    overrides = {field: getattr(args, field) for field, _, _ in _SETTING_FLAGS.values()
                 if getattr(args, field, None) is not None}
    return Settings(**overrides)


def _fail(message: str, code: int) -> NoReturn:
    from flora_mcp.logs import redact

    sys.stderr.write(f"flora-mcp: {redact(message)}\n")
    sys.stderr.flush()
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `flora-mcp` command."""
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        problems = "; ".join(f"FLORA_{str(e['loc'][0]).upper()}: {e['msg']}" for e in exc.errors())
        _fail(f"invalid configuration: {problems}", 2)
    from flora_mcp.logs import add_secret, configure_logging

    configure_logging(settings.log_level)
    add_secret(settings.api_key_value())
    command = args.command or "serve"
    # Hosted with per-user keys, each client brings its own key: the server needs none.
    keys_from_clients = command == "serve" and args.transport != "stdio" and args.per_user_keys
    if not args.sandbox and not settings.api_key_value() and not keys_from_clients:
        _fail("FLORA_API_KEY is not set. Set it to your FLORA API key (sk_live_...), or run with --sandbox to try "
              "the embedded sandbox.", 2)
    try:
        if command == "serve":
            anyio.run(_serve, settings, args)
        elif command == "export-tools":
            anyio.run(_export_tools, settings, args)
        else:
            from flora_mcp.cli import human

            raise SystemExit(anyio.run(human.run_command, command, settings, args))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except StartupError as exc:
        _fail(str(exc), 1)


async def _serve(settings: Settings, args: argparse.Namespace) -> None:
    """Serve on the transport the flags ask for."""
    async with settings_with_sandbox(settings, args.sandbox) as effective:
        if args.transport == "stdio":
            from flora_mcp.server.stdio import serve_stdio

            await serve_stdio(effective)
        else:
            from flora_mcp.hosted import serve_http

            await serve_http(effective, args)


async def _export_tools(settings: Settings, args: argparse.Namespace) -> None:
    async with settings_with_sandbox(settings, args.sandbox) as effective, open_toolkit(effective) as toolkit:
        definitions: Any = toolkit.export_tools(args.format)
    sys.stdout.write(json.dumps(definitions, indent=2) + "\n")


