"""What a hosted server is told by its flags, and the Host/Origin allow-lists that follow from them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from urllib.parse import urlsplit

from mcp.server.transport_security import TransportSecuritySettings

from flora_mcp._net import is_loopback_host as is_loopback

__all__ = ["HostedOptions", "is_loopback", "transport_security"]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True)
class HostedOptions:
    """The serving flags: `--transport`, `--host`, `--port`, `--stateless`, `--per-user-keys`, `--allowed-*`."""

    host: str = "127.0.0.1"
    port: int = 8000
    transport: str = "http"
    stateless: bool = False
    per_user_keys: bool = False
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> HostedOptions:
        """The options from `flora_mcp.cli.main.build_parser()`'s namespace."""
        return cls(host=args.host, port=args.port, transport=args.transport, stateless=args.stateless,
                   per_user_keys=args.per_user_keys, allowed_hosts=tuple(args.allowed_host),
                   allowed_origins=tuple(args.allowed_origin))


def transport_security(options: HostedOptions, port: int, public_url: str | None = None
                       ) -> TransportSecuritySettings:
    """DNS-rebinding protection: loopback names on our port, the bind address, FLORA_PUBLIC_URL's host and origin,
    and every `--allowed-*` value.

    An allowed host without a port matches any port, since a proxy in front usually listens on another one.
    """
    hosts = [f"{name}:{port}" for name in LOOPBACK_NAMES]
    origins = [f"{scheme}://{name}:{port}" for name in LOOPBACK_NAMES for scheme in ("http", "https")]
    bind = f"[{options.host}]" if ":" in options.host else options.host
    if not is_loopback(options.host) and options.host not in ("0.0.0.0", "::", ""):
        hosts.append(f"{bind}:{port}")
    allowed_hosts = list(options.allowed_hosts)
    if public_url:
        public = urlsplit(public_url.strip())
        allowed_hosts.append(public.netloc)
        origins.append(f"{public.scheme}://{public.netloc}")
    for host in allowed_hosts:
        host = host.strip()
        hosts.append(host)
        if not _has_port(host):
            hosts.append(f"{host}:*")
    origins.extend(origin.strip().rstrip("/") for origin in options.allowed_origins)
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                     allowed_origins=origins)


def _has_port(host: str) -> bool:
    if host.startswith("["):
        return "]:" in host
    return host.count(":") == 1
