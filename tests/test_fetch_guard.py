"""The fetch guard: every address a download or upload may reach, the pin to the checked address, every redirect
re-checked, and previews that decode only the formats they name.

Only loopback is reachable from tests, so "an allowed public host" is a name a test resolver maps to 127.0.0.2 with
that server's loopback port allowed; every refusal is proven with the real policy (the production base URL).
"""

from __future__ import annotations

import datetime
import io
import re
import socket
import ssl
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from PIL import EpsImagePlugin, Image
from rich.console import Console

from flora_mcp._fetch_guard import FetchPolicy, FetchRefused, guarded_client, guarded_stream, parse_address
from flora_mcp.cli.human import download_outputs
from flora_mcp.core.previews import fetch_output, make_preview, make_previews
from flora_mcp.core.results import OutputFile, ToolResult
from flora_mcp.sandbox import Sandbox
from flora_mcp.sandbox._samples import SAMPLE_NAMES
from tests.support import serve_in_thread

REAL_FLORA = "https://app.flora.ai/api/v1"
PINNED_ADDRESS = "127.0.0.2"
NAME = "files.example.test"


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 32), (10, 200, 10)).save(out, format="PNG")
    return out.getvalue()


PNG = _png()
EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\n"
       b"newpath 0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n")


class Resolver:
    """A resolver for names no DNS knows; records every lookup. A name may answer differently on each lookup."""

    def __init__(self, names: dict[str, list[str] | list[list[str]]]) -> None:
        self.names = names
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        answer = self.names.get(host)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if answer and isinstance(answer[0], list):
            return answer[min(self.calls.count(host), len(answer)) - 1]  # type: ignore[return-value]
        return answer  # type: ignore[return-value]


# The policy: every address form refused, with the real (production) policy ------------------------------------------

REFUSED = [
    pytest.param("https://169.254.169.254/latest/meta-data/", "link-local", id="metadata"),
    pytest.param("https://10.0.0.5/", "private", id="private"),
    pytest.param("https://192.168.1.5/", "private", id="private-192"),
    pytest.param("https://127.0.0.1:8443/", "loopback", id="loopback"),
    pytest.param("https://[::1]/", "loopback", id="ipv6-loopback"),
    pytest.param("https://[::ffff:127.0.0.1]/", "IPv4-mapped", id="mapped"),
    pytest.param("https://[::ffff:8.8.8.8]/", "IPv4-mapped", id="mapped-public"),
    pytest.param("https://2130706433/", "2130706433 (127.0.0.1) is a loopback", id="integer"),
    pytest.param("https://0x7f000001/", "0x7f000001 (127.0.0.1) is a loopback", id="hex"),
    pytest.param("https://127.1/", "loopback", id="short-dotted"),
    pytest.param("https://0.0.0.0/", "unspecified", id="unspecified"),
    pytest.param("https://[::]/", "unspecified", id="ipv6-unspecified"),
    pytest.param("https://[fe80::1]/", "link-local", id="ipv6-link-local"),
    pytest.param("https://[fd00::1]/", "private", id="ipv6-unique-local"),
    pytest.param("https://224.0.0.1/", "multicast", id="multicast"),
    pytest.param("https://240.0.0.1/", "address", id="reserved"),
    pytest.param("https://100.64.0.1/", "not a public address", id="shared-cgnat"),
    pytest.param("https://[64:ff9b::a9fe:a9fe]/", "embedding 169.254.169.254", id="nat64"),
    pytest.param("https://[2002:7f00:1::]/", "embedding 127.0.0.1", id="6to4"),
    pytest.param("https://localhost/", "localhost resolves to", id="name-to-loopback"),
    pytest.param("http://8.8.8.8/", "only https", id="plain-http"),
    pytest.param("http://127.0.0.1:8000/", "only https", id="plain-http-loopback"),
    pytest.param("ftp://cdn.flora.ai/a.png", "only https", id="ftp"),
    pytest.param("file:///etc/passwd", "only https", id="file"),
    pytest.param("data:image/png;base64,AAAA", "only https", id="data"),
    pytest.param("/files/a.png", "not an absolute URL", id="relative"),
    pytest.param("https://user:pw@8.8.8.8/", "credentials", id="userinfo"),
    pytest.param("https://0177.0.0.1/", "not a valid URL", id="octal-dotted"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("url", "why"), REFUSED)
async def test_the_real_policy_refuses_every_non_public_address_in_every_spelling(url: str, why: str) -> None:
    with pytest.raises(FetchRefused, match=re.escape(why)):
        await FetchPolicy.for_flora(REAL_FLORA).check(url)


@pytest.mark.anyio
@pytest.mark.parametrize("answer", [["127.0.0.1"], ["10.0.0.5"], ["8.8.8.8", "10.0.0.5"], ["::ffff:10.0.0.5"]],
                         ids=["loopback", "private", "one-of-two-private", "mapped"])
async def test_a_name_is_refused_when_any_address_it_resolves_to_is_not_public(answer: list[str]) -> None:
    resolver = Resolver({"evil.example": answer})
    with pytest.raises(FetchRefused, match="evil.example resolves to"):
        await FetchPolicy.for_flora(REAL_FLORA, resolver=resolver).check("https://evil.example/a.png")
    assert resolver.calls == ["evil.example"]


@pytest.mark.anyio
async def test_a_public_name_passes_and_is_pinned_to_the_address_it_resolved_to() -> None:
    resolver = Resolver({"cdn.example": ["93.184.216.34"]})
    destination = await FetchPolicy.for_flora(REAL_FLORA, resolver=resolver).check("https://cdn.example:8443/a.png")
    assert str(destination.request_url) == "https://93.184.216.34:8443/a.png"
    assert destination.host_header == "cdn.example:8443"
    assert destination.extensions == {"sni_hostname": "cdn.example"}


@pytest.mark.anyio
async def test_a_public_address_in_a_legacy_spelling_is_connected_to_as_the_address() -> None:
    destination = await FetchPolicy.for_flora(REAL_FLORA).check("https://1572395042/a.png")
    assert str(destination.request_url) == "https://93.184.216.34/a.png" and destination.extensions == {}


@pytest.mark.parametrize(("host", "address"), [("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"),
                                               ("127.1", "127.0.0.1"), ("[::1]", "::1"), ("cafe.be", None),
                                               ("example.com", None), ("1.2.3.4.5", None)])
def test_hosts_are_read_as_addresses_the_way_the_c_resolver_reads_them(host: str, address: str | None) -> None:
    parsed = parse_address(host)
    assert (str(parsed) if parsed else None) == address


@pytest.mark.anyio
async def test_beside_a_loopback_flora_only_its_own_port_is_reachable_on_loopback() -> None:
    policy = FetchPolicy.for_flora("http://127.0.0.1:8123/api/v1")
    for allowed in ("http://127.0.0.1:8123/files/a.png", "http://localhost:8123/files/a.png",
                    "https://127.0.0.1:8123/files/a.png"):
        await policy.check(allowed)
    for refused, why in (("http://127.0.0.1:6379/", "loopback"), ("http://10.0.0.5:8123/", "private"),
                         ("http://[::ffff:127.0.0.1]:8123/", "IPv4-mapped"), ("http://8.8.8.8/", "only https")):
        with pytest.raises(FetchRefused, match=why):
            await policy.check(refused)


@pytest.mark.anyio
async def test_the_sandbox_on_loopback_still_gets_previews(sandbox: Sandbox) -> None:
    url = sandbox.sample_url(SAMPLE_NAMES[0])
    previews = await make_previews([OutputFile(output_id="out", type="imageUrl", url=url)],
                                   flora_base_url=sandbox.base_url)
    assert len(previews) == 1 and previews[0].mime_type in ("image/png", "image/jpeg")


# The pin: one lookup per hop, the connection to the checked address, Host and SNI the name --------------------------


class _Handler(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str, str]]
    """(method, path, Host header, the local address the connection arrived at)."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class names it so
        pass

    def _answer(self, status: int, body: bytes = b"", location: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.seen.append(("GET", self.path, self.headers.get("Host", ""), self.connection.getsockname()[0]))
        if self.path.startswith("/to/"):
            self._answer(302, location=self.path.removeprefix("/to/"))
        elif self.path == "/again":
            self._answer(302, location="/image.png")
        else:
            self._answer(200, PNG)

    def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.seen.append(("PUT", self.path, self.headers.get("Host", ""), self.connection.getsockname()[0]))
        self._answer(307, location="http://elsewhere.example.test/upload")


class Server:
    """An HTTP(S) server on 127.0.0.2 only: a connection that reaches it went to that address."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.seen: list[tuple[str, str, str, str]] = []
        handler = type("Handler", (_Handler,), {"seen": self.seen})
        self.httpd = ThreadingHTTPServer((PINNED_ADDRESS, 0), handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if tls else "http"
        self.policy_resolver = Resolver({NAME: [PINNED_ADDRESS], "second.example.test": [PINNED_ADDRESS],
                                         "private.example.test": ["10.0.0.5"],
                                         "rebinding.example.test": [[PINNED_ADDRESS], ["169.254.169.254"]]})
        self.policy = FetchPolicy(loopback_ports=frozenset({self.port}), resolver=self.policy_resolver)

    def url(self, path: str, host: str = NAME) -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


@pytest.fixture
def server() -> Iterator[Server]:
    yield from _serving(Server())


def _serving(server: Server) -> Iterator[Server]:
    with serve_in_thread(server.httpd):
        yield server


@pytest.fixture
def no_system_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every name the system resolver is asked for during the test (it must be none of the test's names)."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def spy(host: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(str(host))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", spy)
    return asked


@pytest.mark.anyio
async def test_a_download_resolves_once_and_connects_to_the_checked_address_with_the_name_as_host(
        server: Server, no_system_dns: list[str]) -> None:
    fetched = await fetch_output(server.url("/image.png"), flora_base_url=REAL_FLORA, policy=server.policy)
    assert fetched.data == PNG
    assert server.policy_resolver.calls == [NAME]
    assert server.seen == [("GET", "/image.png", f"{NAME}:{server.port}", PINNED_ADDRESS)]
    assert not [host for host in no_system_dns if "example.test" in host]


@pytest.mark.anyio
async def test_every_redirect_is_resolved_and_checked_again_once(server: Server, no_system_dns: list[str]) -> None:
    second = server.url("/image.png", host="second.example.test")
    fetched = await fetch_output(server.url(f"/to/{second}"), flora_base_url=REAL_FLORA, policy=server.policy)
    assert fetched.data == PNG
    assert server.policy_resolver.calls == [NAME, "second.example.test"]
    assert [(path, host) for _, path, host, _ in server.seen] == [
        (f"/to/{second}", f"{NAME}:{server.port}"), ("/image.png", f"second.example.test:{server.port}")]
    assert not [host for host in no_system_dns if "example.test" in host]


@pytest.mark.anyio
@pytest.mark.parametrize(("target", "why"), [
    ("http://private.example.test:{port}/x", "private.example.test resolves to 10.0.0.5, which is a private"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://2130706433:{port}/x", "2130706433 (127.0.0.1) is a loopback address"),
    ("http://[::ffff:127.0.0.2]:{port}/x", "IPv4-mapped"),
    ("file:///etc/passwd", "only https"),
], ids=["name-to-private", "metadata", "integer-loopback-other-port", "mapped", "file"])
async def test_a_redirect_from_an_allowed_host_to_a_forbidden_one_is_refused(server: Server, target: str,
                                                                            why: str) -> None:
    target = target.format(port=server.port + 1 if "2130706433" in target else server.port)
    with pytest.raises(FetchRefused, match=re.escape(why)):
        await fetch_output(server.url(f"/to/{target}"), flora_base_url=REAL_FLORA, policy=server.policy)
    assert [path for _, path, _, _ in server.seen] == [f"/to/{target}"]


@pytest.mark.anyio
async def test_a_name_that_rebinds_between_hops_is_caught_on_the_hop_that_rebinds(server: Server) -> None:
    with pytest.raises(FetchRefused, match="169.254.169.254, which is a link-local"):
        await fetch_output(server.url("/again", host="rebinding.example.test"), flora_base_url=REAL_FLORA,
                           policy=server.policy)
    assert server.policy_resolver.calls == ["rebinding.example.test"] * 2
    assert [path for _, path, _, _ in server.seen] == ["/again"]


@pytest.mark.anyio
async def test_an_upload_is_never_redirected_elsewhere(server: Server) -> None:
    async with guarded_client(timeout=5) as client:
        with pytest.raises(FetchRefused, match="redirect in answer to PUT is not followed"):
            async with guarded_stream(client, "PUT", server.url("/upload"), policy=server.policy,
                                      content=b"asset bytes"):
                pass
    assert [(method, path) for method, path, _, _ in server.seen] == [("PUT", "/upload")]
    assert server.policy_resolver.calls == [NAME]


@pytest.mark.anyio
async def test_the_human_cli_download_goes_through_the_guard(tmp_path: Path) -> None:
    result = ToolResult(tool="t", status="completed", run_id="run_1", outputs=[
        OutputFile(output_id="out", type="imageUrl", url="https://169.254.169.254/latest/meta-data/")])
    errors = io.StringIO()
    saved, failed = await download_outputs(result, tmp_path, flora_base_url=REAL_FLORA,
                                           err=Console(file=errors, width=300))
    assert saved == [] and failed and "link-local" in errors.getvalue()
    assert list(tmp_path.iterdir()) == []


# TLS: the certificate is checked against the name, which is also the server name sent --------------------------------


def _certificates(name: str) -> tuple[bytes, bytes, bytes]:
    """A CA certificate, and a server certificate and key for `name` signed by it (PEM)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flora-mcp test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return (ca.public_bytes(serialization.Encoding.PEM), leaf.public_bytes(serialization.Encoding.PEM), key_pem)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, ssl.SSLContext, list[str | None]]]:
    ca, leaf, key = _certificates(NAME)
    (tmp_path / "leaf.pem").write_bytes(leaf)
    (tmp_path / "key.pem").write_bytes(key)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "key.pem")
    names: list[str | None] = []
    server_side.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,misc,return-value]
    client_side = ssl.create_default_context(cadata=ca.decode())
    server = Server(tls=server_side)
    with serve_in_thread(server.httpd):
        yield server, client_side, names


@pytest.mark.anyio
async def test_over_https_the_pinned_connection_sends_the_name_as_sni_and_verifies_the_certificate_for_it(
        tls_server: tuple[Server, ssl.SSLContext, list[str | None]]) -> None:
    server, verify, names = tls_server
    async with guarded_client(timeout=5, verify=verify) as client:
        fetched = await fetch_output(server.url("/image.png"), flora_base_url=REAL_FLORA, policy=server.policy,
                                     client=client)
    assert fetched.data == PNG
    assert names == [NAME]
    assert server.seen == [("GET", "/image.png", f"{NAME}:{server.port}", PINNED_ADDRESS)]


@pytest.mark.anyio
async def test_over_https_a_certificate_for_another_name_is_refused(
        tls_server: tuple[Server, ssl.SSLContext, list[str | None]]) -> None:
    server, verify, _ = tls_server
    async with guarded_client(timeout=5, verify=verify) as client:
        with pytest.raises(FetchRefused, match="download failed: ConnectError"):
            await fetch_output(server.url("/image.png", host="second.example.test"), flora_base_url=REAL_FLORA,
                               policy=server.policy, client=client)
    assert server.seen == []


@pytest.mark.anyio
async def test_by_default_a_certificate_from_an_unknown_authority_is_refused(
        tls_server: tuple[Server, ssl.SSLContext, list[str | None]]) -> None:
    server, _, _ = tls_server
    async with guarded_client(timeout=5) as client:
        with pytest.raises(FetchRefused, match="download failed: ConnectError"):
            await fetch_output(server.url("/image.png"), flora_base_url=REAL_FLORA, policy=server.policy,
                               client=client)
    assert server.seen == []


# Decoding: only the formats a preview names ---------------------------------------------------------------------------


def test_eps_is_refused_before_anything_runs_ghostscript(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[object] = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *args, **kwargs: ran.append(args))
    with pytest.raises(ValueError, match="not a readable image"):
        make_preview(EPS)
    assert ran == []


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_the_four_preview_formats_are_decoded(fmt: str) -> None:
    out = io.BytesIO()
    Image.new("RGB", (40, 20), (1, 2, 3)).save(out, format=fmt)
    data, mime = make_preview(out.getvalue())
    assert mime in ("image/jpeg", "image/png") and Image.open(io.BytesIO(data)).size == (40, 20)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "ICO", "PPM"])
def test_other_formats_pillow_knows_are_refused(fmt: str) -> None:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(out, format=fmt)
    with pytest.raises(ValueError, match="not a readable image"):
        make_preview(out.getvalue())
