"""The one guarded way flora-mcp reaches a URL it did not choose: output downloads, previews, and asset uploads.

Output URLs come from FLORA's answers (and upload URLs from a user's arguments); fetching one blindly would let whoever
controls it make this process reach the cloud metadata service, the local network or the machine's own services. So
every hop, the first request and each redirect (followed here, never by httpx, at most `MAX_REDIRECTS`), is:

1. parsed by httpx's own URL parser (the one that sends the request); a URL with credentials in it is refused;
2. read as an address when its host is one, including the legacy IPv4 spellings `2130706433`, `0x7f000001` and
   `127.1`, IPv6 and IPv4-mapped IPv6; otherwise resolved, once;
3. refused unless every address is public: loopback, private, link-local, multicast, reserved, unspecified, shared
   (CGNAT) and mapped addresses are refused, and so are NAT64 and 6to4 addresses that embed one. The one exception
   is FLORA itself on loopback (the sandbox): loopback at FLORA's own port, and only there, plain http;
4. connected to the address that was checked: the request goes to that IP, with the name kept as the Host header
   and the TLS server name (certificates are verified against the name), over a connection that is never pooled,
   so nothing resolves the name a second time and no connection checked for one name serves another.

Exceptions:

    FetchRefused        the policy refused a hop, a limit was broken, or the transfer failed; the message says which

`_translate` is the one place lower-level errors (httpx's, the resolver's) become FetchRefused.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import httpx

from flora_mcp._net import is_loopback_host
from flora_mcp._version import __version__

__all__ = [
    "MAX_REDIRECTS",
    "Address",
    "Destination",
    "FetchPolicy",
    "FetchRefused",
    "Resolver",
    "address_refusal",
    "guarded_client",
    "guarded_stream",
    "parse_address",
    "system_resolver",
]

MAX_REDIRECTS = 3
DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_METHODS = frozenset({"GET", "HEAD"})
# What `inet_aton` (and so the C resolver) reads as an IPv4 address: decimal, hex or octal parts, 1 to 4 of them.
_LEGACY_IPV4 = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}", re.IGNORECASE)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""`(host, port) -> addresses`: the system's by default; tests inject one that knows names no DNS does."""


class FetchRefused(Exception):
    """A URL was not fetched: the policy refused it, the answer broke a limit, or the transfer failed."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host`, as strings."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def parse_address(host: str) -> Address | None:
    """The address a host names when it is one (`[::1]`, `10.0.0.5`, `2130706433`, `0x7f000001`), else None."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(bare):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(bare))
        except OSError:
            return None
    return None


def _kind(address: Address) -> str | None:
    """What makes an address non-public, or None for a public one; the most specific reason first."""
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "not public"  # shared (CGNAT) space and the like
    return None


def address_refusal(address: Address, *, port: int, loopback_ports: frozenset[int] = frozenset()) -> str | None:
    """What keeps the guard from connecting to `address` at `port` ("a private address"), or None when it may.

    Args:
        address: a checked address.
        port: the TCP port of the request.
        loopback_ports: loopback ports that may be reached (FLORA's own, when it is on loopback).
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"an IPv4-mapped address (of {address.ipv4_mapped})"
        embedded = address.sixtofour
        if address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and _kind(embedded) is not None:
            return f"an address embedding {embedded} ({_kind(embedded)})"
    kind = _kind(address)
    if kind is None or (kind == "loopback" and port in loopback_ports):
        return None
    if kind == "not public":
        return "not a public address"
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} address"


@dataclass(frozen=True)
class Destination:
    """One checked hop: the URL as given, the address it connects to, and the name kept for Host and TLS."""

    url: httpx.URL
    address: Address
    name: str | None
    """The host name that was resolved; None when the URL named an address."""

    @property
    def request_url(self) -> httpx.URL:
        """The URL with its host replaced by the checked address: what httpx connects to."""
        return self.url.copy_with(host=str(self.address))

    @property
    def host_header(self) -> str:
        return self.url.netloc.decode("ascii") if self.name else self.request_url.netloc.decode("ascii")

    @property
    def extensions(self) -> dict[str, str]:
        """The TLS server name (SNI, and the name the certificate is checked against) for an https name."""
        if self.name and self.url.scheme == "https":
            return {"sni_hostname": self.name.rstrip(".")}
        return {}


@dataclass(frozen=True)
class FetchPolicy:
    """Where flora-mcp may connect for a URL it did not choose.

    Args:
        loopback_ports: loopback ports that may be reached, over http too (FLORA's own when it is on loopback).
        resolver: turns a name into addresses, once per hop.
        max_redirects: redirects followed before giving up.
    """

    loopback_ports: frozenset[int] = frozenset()
    resolver: Resolver = field(default=system_resolver, compare=False)
    max_redirects: int = MAX_REDIRECTS

    @classmethod
    def for_flora(cls, flora_base_url: str, *, resolver: Resolver | None = None) -> FetchPolicy:
        """The policy beside this FLORA: loopback at FLORA's own port when FLORA is on loopback, else public only."""
        base = httpx.URL(flora_base_url)
        ports: frozenset[int] = frozenset()
        if is_loopback_host(base.host):
            ports = frozenset({base.port or DEFAULT_PORTS.get(base.scheme, 443)})
        return cls(loopback_ports=ports, resolver=resolver or system_resolver)

    async def check(self, url: str | httpx.URL) -> Destination:
        """The destination of `url` once every address it names or resolves to passed the policy.

        Raises:
            FetchRefused: the URL is malformed, not http(s), carries credentials, cannot be resolved, or reaches an
                address (or uses plain http) the policy refuses.
        """
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise FetchRefused(f"not a valid URL: {exc}") from None
        if parsed.scheme not in DEFAULT_PORTS or not parsed.host:
            raise FetchRefused(f"only https URLs are fetched, not {parsed.scheme or 'a relative'} URL "
                               f"{'of ' + parsed.host if parsed.host else '(not an absolute URL)'}")
        if parsed.userinfo:
            raise FetchRefused("a URL with credentials in it is not fetched")
        host = parsed.raw_host.decode("ascii")
        port = parsed.port or DEFAULT_PORTS[parsed.scheme]
        if parsed.scheme == "http" and not self.loopback_ports:
            raise FetchRefused(f"only https URLs are fetched, not http URL of {host}")
        literal = parse_address(host)
        addresses = [literal] if literal is not None else await self._resolve(host, port)
        for address in addresses:
            reason = address_refusal(address, port=port, loopback_ports=self.loopback_ports)
            if reason:
                where = (f"{host} resolves to {address}, which is" if literal is None
                         else f"{host} is" if host.strip("[]") == str(address) else f"{host} ({address}) is")
                raise FetchRefused(f"{where} {reason}: only public addresses are fetched")
            if parsed.scheme == "http" and not address.is_loopback:
                raise FetchRefused(f"only https URLs are fetched, not http URL of {host}")
        return Destination(url=parsed, address=addresses[0], name=None if literal is not None else host)

    async def _resolve(self, host: str, port: int) -> list[Address]:
        try:
            found = await self.resolver(host, port)
        except OSError as exc:
            raise _translate(exc, host) from None
        addresses: list[Address] = []
        for text in found:
            try:
                addresses.append(ipaddress.ip_address(text))
            except ValueError:
                raise FetchRefused(f"{host} resolved to {text!r}, not an address") from None
        if not addresses:
            raise FetchRefused(f"{host} resolved to no address")
        return addresses


def guarded_client(*, timeout: float, verify: ssl.SSLContext | bool = True,
                   transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """An httpx client fit for `guarded_stream`: no redirects, no proxies from the environment, no pooling.

    A proxy would resolve the name itself, so the environment's proxies are not used; a pooled connection would let
    a connection checked for one name serve another, so none is kept. `transport` lets tests swap the network out.
    """
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False, verify=verify,
                             limits=httpx.Limits(max_keepalive_connections=0), transport=transport,
                             headers={"User-Agent": f"flora-mcp/{__version__}"})


@asynccontextmanager
async def guarded_stream(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    policy: FetchPolicy,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
) -> AsyncIterator[httpx.Response]:
    """A streaming request whose every hop passed `policy`, connected to the checked address; any final status.

    GET and HEAD follow redirects (each one checked anew); any other method refuses a redirect rather than send its
    body somewhere else.

    Args:
        client: a client from `guarded_client`.
        method: the HTTP method.
        url: the URL as given.
        policy: where connections may go.
        headers: extra request headers.
        content: the request body (uploads).

    Raises:
        FetchRefused: a hop was refused, too many redirects, or the transfer failed (also while the caller reads).
    """
    current = url
    try:
        for _ in range(policy.max_redirects + 1):
            destination = await policy.check(current)
            request = client.build_request(method, destination.request_url, content=content,
                                           headers={**(headers or {}), "Host": destination.host_header},
                                           extensions=destination.extensions)
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                if not response.is_redirect:
                    yield response
                    return
                if method.upper() not in _REDIRECT_METHODS:
                    raise FetchRefused(f"a redirect in answer to {method.upper()} is not followed")
                current = str(destination.url.join(response.headers.get("location", "")))
            finally:
                await response.aclose()
        raise FetchRefused(f"more than {policy.max_redirects} redirects")
    except httpx.HTTPError as exc:
        raise _translate(exc) from exc


def _translate(exc: Exception, host: str | None = None) -> FetchRefused:
    """The one place a lower-level failure becomes FetchRefused, with its kind but never a raw URL or body."""
    if isinstance(exc, socket.gaierror | OSError) and host is not None:
        return FetchRefused(f"cannot resolve {host}: {exc.strerror or type(exc).__name__}")
    return FetchRefused(f"download failed: {type(exc).__name__}")
