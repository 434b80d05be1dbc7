"""The `flora-mcp` command: serve MCP (stdio, HTTP, SSE), and verbs for people and pipelines.

Nothing happens at import: `main()` reads flags and the environment, then runs one coroutine.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
from pydantic import ValidationError

from flora_mcp._version import __version__
from flora_mcp.cli.flags import add_setting_flags, setting_overrides
from flora_mcp.cli.sandbox import settings_with_sandbox
from flora_mcp.config import ConfigurationError, Settings
from flora_mcp.core.startup import StartupError, open_toolkit

if TYPE_CHECKING:
    from flora_mcp.core.catalog_process import CatalogProcess

__all__ = ["main", "settings_from_args"]

log = logging.getLogger("flora_mcp")


def _settings_parent(*, suppress_defaults: bool) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("FLORA settings (flags win over FLORA_* environment variables)")
    group.add_argument("--sandbox", action="store_true",
                       default=argparse.SUPPRESS if suppress_defaults else False,
                       help="Start the embedded FLORA sandbox on loopback and use it (no key needed).")
    add_setting_flags(group, suppress_defaults=suppress_defaults)
    return parent


def _serve_parent(*, suppress_defaults: bool) -> argparse.ArgumentParser:
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress_defaults else value

    serve_opts = argparse.ArgumentParser(add_help=False)
    serve_group = serve_opts.add_argument_group("serving")
    serve_group.add_argument("--transport", choices=["stdio", "http", "sse"], default=default("stdio"))
    serve_group.add_argument("--host", default=default("127.0.0.1"), help="HTTP bind address (default 127.0.0.1).")
    serve_group.add_argument("--port", type=int, default=default(8000), help="HTTP port (default 8000).")
    serve_group.add_argument("--stateless", action="store_true", default=default(False),
                             help="Stateless streamable HTTP (replicas).")
    serve_group.add_argument("--per-user-keys", action="store_true", default=default(False),
                             help="Hosted: each client sends its own FLORA key (Authorization or X-Flora-Api-Key).")
    serve_group.add_argument("--allowed-host", action="append", default=default([]), metavar="HOST",
                             help="Hosted: also accept this Host header (repeatable).")
    serve_group.add_argument("--allowed-origin", action="append", default=default([]), metavar="ORIGIN",
                             help="Hosted: also accept this Origin (repeatable).")
    return serve_opts


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: serving flags, FLORA settings flags, and the verbs."""
    # The verbs' copies of the shared flags have no defaults: a flag given before the verb's name stays given.
    parent, serve_opts = _settings_parent(suppress_defaults=False), _serve_parent(suppress_defaults=False)
    verb_parent, verb_serve_opts = _settings_parent(suppress_defaults=True), _serve_parent(suppress_defaults=True)
    parser = argparse.ArgumentParser(
        prog="flora-mcp", parents=[parent, serve_opts],
        description="Every FLORA technique as a typed MCP tool. Without a command: serve MCP.")
    parser.add_argument("--version", action="version", version=f"flora-mcp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", parents=[verb_parent, verb_serve_opts], help="Serve MCP (the default).")
    export = sub.add_parser("export-tools", parents=[verb_parent], help="Print the tool definitions as JSON.")
    export.add_argument("--format", choices=["mcp", "anthropic", "openai", "gemini"], default="mcp")
    sub.add_parser("techniques", parents=[verb_parent], help="A table of the techniques: name, tool, inputs, cost.")
    describe = sub.add_parser("describe", parents=[verb_parent], help="One technique's inputs, schema and cost.")
    describe.add_argument("technique", help="Tool name, slug, technique id or name.")
    run = sub.add_parser("run", parents=[verb_parent], help="Run a technique: flora-mcp run cctv-cam input_image=URL")
    run.add_argument("technique", help="Tool name, slug, technique id or name.")
    run.add_argument("inputs", nargs="*", metavar="KEY=VALUE", help="Inputs; repeat a key for several values.")
    run.add_argument("--download", metavar="DIR", help="Save the outputs into DIR.")
    run.add_argument("--json", action="store_true", help="Print the result as JSON.")
    run.add_argument("--yes", "-y", action="store_true",
                     help="Accept the price without asking (when FLORA_CONFIRM_ABOVE would ask).")
    upload = sub.add_parser("upload", parents=[verb_parent],
                            help="Upload files as FLORA assets and print their URLs: flora-mcp upload photo.jpg")
    upload.add_argument("files", nargs="+", metavar="FILE", help="A path, file:// URI or data: URL.")
    upload.add_argument("--json", action="store_true", help="Print what was uploaded as JSON.")
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings: environment first, then every flag given."""
    return Settings(**setting_overrides(args))


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
    if not args.sandbox and not keys_from_clients:
        try:
            settings.require_api_key()
        except ConfigurationError as exc:
            _fail(exc.message, 2)
    try:
        if command == "serve":
            child = None
            if args.transport == "stdio" and not args.sandbox:
                from flora_mcp.core.catalog_process import start_catalog_process

                child = start_catalog_process(settings)  # before any thread, and before the SDK's import
            anyio.run(_serve, settings, args, child)
        elif command == "export-tools":
            anyio.run(_export_tools, settings, args)
        else:
            from flora_mcp.cli import human

            raise SystemExit(anyio.run(human.run_command, command, settings, args))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except StartupError as exc:
        _fail(str(exc), 1)
    except BaseExceptionGroup as group:
        # Raised inside a task group (the embedded sandbox's, with --sandbox): the one line, not the group's traceback.
        startup = _startup_error_in(group)
        if startup is None:
            raise
        _fail(str(startup), 1)


def _startup_error_in(group: BaseExceptionGroup[BaseException]) -> StartupError | None:
    for exc in group.exceptions:
        found = _startup_error_in(exc) if isinstance(exc, BaseExceptionGroup) else exc
        if isinstance(found, StartupError):
            return found
    return None


async def _serve(settings: Settings, args: argparse.Namespace, child: CatalogProcess | None = None) -> None:
    """Serve on the transport the flags ask for (stdio with the catalog `child` loads, when there is one)."""
    async with settings_with_sandbox(settings, args.sandbox) as effective:
        if args.transport == "stdio":
            from flora_mcp.server.stdio import serve_stdio

            await serve_stdio(effective, child)
        else:
            from flora_mcp.hosted import serve_http

            await serve_http(effective, args)


async def _export_tools(settings: Settings, args: argparse.Namespace) -> None:
    async with settings_with_sandbox(settings, args.sandbox) as effective, open_toolkit(effective) as toolkit:
        definitions: Any = toolkit.export_tools(args.format)
    sys.stdout.write(json.dumps(definitions, indent=2) + "\n")


