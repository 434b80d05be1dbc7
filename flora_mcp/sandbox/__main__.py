"""`python -m flora_mcp.sandbox`: run a sandbox until Ctrl-C or SIGTERM, printing its base URL and API key."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Sequence

import anyio

from flora_mcp.sandbox._config import DEFAULT_SANDBOX_KEY, DEFAULT_WEBHOOK_SECRET, Account, SandboxConfig
from flora_mcp.sandbox._server import serve_sandbox

__all__ = ["main", "parse_config"]


def parse_config(argv: Sequence[str] | None = None) -> SandboxConfig:
    """The sandbox configuration the command line asks for."""
    parser = argparse.ArgumentParser(prog="python -m flora_mcp.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument(
        "--key", action="append", dest="keys", help=f"API key (repeatable; default {DEFAULT_SANDBOX_KEY})"
    )
    parser.add_argument("--credits", type=float, default=None, help="credit balance in USD per key (default unlimited)")
    parser.add_argument(
        "--delay", type=float, default=2.0, help="seconds every run waits on top of its work (default 2)"
    )
    parser.add_argument("--page-size", type=int, default=3, help="default page size of GET /techniques (default 3)")
    parser.add_argument("--rate-limit", type=float, default=None, help="requests per second per key (default off)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request (default 0)")
    parser.add_argument("--extra-techniques", type=int, default=0, help="synthetic techniques to add (default 0)")
    parser.add_argument("--enable-control", action="store_true", help="mount the /_sandbox/ fault-injection routes")
    parser.add_argument("--webhook-secret", default=DEFAULT_WEBHOOK_SECRET,
                        help=f"whsec_ secret signing completion callbacks (default {DEFAULT_WEBHOOK_SECRET})")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("the sandbox binds loopback only: --host must be 127.0.0.1, ::1 or localhost")
    keys = args.keys or [DEFAULT_SANDBOX_KEY]
    return SandboxConfig(
        keys={key: Account(credits=args.credits) for key in keys},
        host="127.0.0.1" if args.host == "localhost" else args.host,
        port=args.port,
        run_delay=args.delay,
        page_size=args.page_size,
        max_page_size=max(100, args.page_size),
        rate_limit=args.rate_limit,
        latency=args.latency,
        extra_techniques=args.extra_techniques,
        enable_control=args.enable_control,
        webhook_secret=args.webhook_secret,
    )


async def _serve(config: SandboxConfig) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with serve_sandbox(config) as sandbox:
            print(sandbox.base_url, flush=True)  # noqa: T201 -- this command's output is the base URL and key
            print(f"API key: {sandbox.api_key}", flush=True)  # noqa: T201
            async for _ in signals:
                break


def main(argv: Sequence[str] | None = None) -> None:
    """Run the sandbox from the command line."""
    anyio.run(_serve, parse_config(argv))


if __name__ == "__main__":
    main()
