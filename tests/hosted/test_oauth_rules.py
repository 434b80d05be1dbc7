"""`TokenChecker`'s rules one by one, against a small issuer on loopback (metadata, JWKS and introspection over real
HTTP, signed with a key of the test's own): who a token names, each refusal's reason and detail, the `typ` spellings,
and the introspection cache's lifetime and eviction order.

The tests against a real authorization server (test_oauth_tokens.py, oidc-provider) prove the checks work with one;
these pin the rules mutation testing `hosted/_oauth.py` found unpinned: each assertion failed on a mutant the
others passed. No Node here: they run without the `oauth` marker.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp.server.auth.provider import AccessToken

from flora_mcp.config import Settings
from flora_mcp.hosted import _oauth
from flora_mcp.hosted._oauth import (
    JWKS_REFETCH_COOLDOWN,
    METADATA_TTL,
    OAuthResource,
    Rejection,
    TokenChecker,
    resource_url,
)
from tests.support import serve_in_thread

pytestmark = pytest.mark.anyio

RESOURCE = "http://127.0.0.1:8123/mcp"
KID = "rules-key-1"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Issuer:
    """What the loopback issuer serves, and what it was asked."""

    url: str = ""
    active: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Opaque token -> its introspection answer."""
    hits: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    metadata_issuer: str | None = None
    """The issuer its metadata names (None: its own URL)."""
    metadata_status: int = 200
    introspection: bool = True
    extra_keys: list[dict[str, Any]] = field(default_factory=list)

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for hit in self.hits if hit == path)


def handler_for(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key())), "kid": KID, "use": "sig",
           "alg": "RS256"}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self, body: Any, status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            with issuer.lock:
                issuer.hits.append(self.path)
            if self.path == "/.well-known/oauth-authorization-server":
                metadata = {"issuer": issuer.metadata_issuer or issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
                if issuer.introspection:
                    metadata["introspection_endpoint"] = f"{issuer.url}/introspect"
                self.answer(metadata, issuer.metadata_status)
            elif self.path == "/jwks":
                self.answer({"keys": [*issuer.extra_keys, jwk]})
            else:
                self.answer({"error": "not_found"}, 404)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            with issuer.lock:
                issuer.hits.append(self.path)
            token = form.get("token", [""])[0]
            self.answer(issuer.active.get(token, {"active": False}))

    return Handler


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    state = Issuer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    with serve_in_thread(server):
        yield state


def checker(issuer: Issuer, *, types: frozenset[str] | None = frozenset({"at+jwt"}),
            introspection: bool = False, clock: Callable[[], float] = time.time) -> TokenChecker:
    client_id, secret = ("flora-mcp", "introspection-secret") if introspection else (None, None)
    return TokenChecker(OAuthResource(issuer=issuer.url, resource=RESOURCE, scopes=("flora",), token_types=types,
                                      leeway=0.0, client_id=client_id, client_secret=secret), clock=clock)


def token(issuer: Issuer, *, typ: str | None = "at+jwt", kid: str | None = KID, alg: str = "RS256",
          **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": issuer.url, "aud": RESOURCE, "exp": now + 7200, "iat": now, "scope": "flora", **claims}
    headers: dict[str, Any] = {"typ": typ, **({"kid": kid} if kid else {})}  # typ None: none (PyJWT would add JWT)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, KEY, algorithm=alg, headers=headers)


async def check(issuer: Issuer, value: str, **options: Any) -> AccessToken | Rejection:
    checking = checker(issuer, **options)
    try:
        return await checking.check(value)
    finally:
        await checking.aclose()


async def test_a_token_naming_only_its_authorized_party_is_that_client(issuer: Issuer) -> None:
    checked = await check(issuer, token(issuer, azp="ci-robot"))
    assert isinstance(checked, AccessToken)
    assert (checked.subject, checked.client_id, checked.scopes) == ("ci-robot", "ci-robot", ["flora"])


async def test_a_tokens_client_id_is_its_client_id_claim_not_its_subject(issuer: Issuer) -> None:
    checked = await check(issuer, token(issuer, sub="alice", client_id="claude-desktop", azp="other"))
    assert isinstance(checked, AccessToken)
    assert (checked.subject, checked.client_id) == ("alice", "claude-desktop")


async def test_a_token_naming_nobody_is_refused(issuer: Issuer) -> None:
    assert await check(issuer, token(issuer)) == Rejection("invalid", "token names no subject (sub, client_id)")


async def test_an_expired_token_is_refused_as_expired(issuer: Issuer) -> None:
    expired = token(issuer, sub="alice", exp=int(time.time()) - 60)
    assert await check(issuer, expired) == Rejection("expired", "token expired")


async def test_typ_is_read_with_or_without_its_media_type_prefix(issuer: Issuer) -> None:
    assert isinstance(await check(issuer, token(issuer, typ="application/at+jwt", sub="alice")), AccessToken)
    assert await check(issuer, token(issuer, typ=None, sub="alice")) == Rejection(
        "invalid", "token typ 'absent', not at+jwt")


async def test_a_payload_that_is_not_an_object_is_refused(issuer: Issuer) -> None:
    listed = jwt.api_jws.encode(b"[1, 2]", KEY, algorithm="RS256", headers={"kid": KID, "typ": "at+jwt"})
    assert await check(issuer, listed) == Rejection("invalid", "token payload is not a JSON object")


async def test_another_issuers_token_and_an_unknown_key_say_which(issuer: Issuer) -> None:
    elsewhere = token(issuer, sub="alice", iss="https://evil.example")
    assert await check(issuer, elsewhere) == Rejection(
        "invalid", "token issued by 'https://evil.example', not the configured issuer")
    unknown = jwt.encode({"iss": issuer.url, "aud": RESOURCE, "exp": int(time.time()) + 60, "sub": "alice"}, KEY,
                         algorithm="RS256", headers={"kid": "not-published", "typ": "at+jwt"})
    assert await check(issuer, unknown) == Rejection("invalid", "no signing key 'not-published' in the issuer's JWKS")


async def test_an_issuer_that_cannot_be_reached_makes_the_check_unavailable_saying_why(issuer: Issuer) -> None:
    gone = Issuer(url="http://127.0.0.1:9")  # discard: nothing listens
    checked = await check(gone, token(gone, sub="alice"))
    assert isinstance(checked, Rejection) and checked.reason == "unavailable"
    assert checked.detail.startswith("no metadata for issuer http://127.0.0.1:9 (") and "ConnectError" in checked.detail


def opaque(issuer: Issuer, name: str, **answer: Any) -> str:
    value = f"opaque-{name}-0123456789"
    issuer.active[value] = {"active": True, "iss": issuer.url, "aud": RESOURCE, "sub": name, "scope": "flora",
                            "exp": int(time.time()) + 3600, **answer}
    return value


async def test_an_introspected_token_is_asked_about_once_while_it_is_cached(issuer: Issuer) -> None:
    checking = checker(issuer, introspection=True)
    value = opaque(issuer, "alice")
    try:
        first, again = await checking.check(value), await checking.check(value)
    finally:
        await checking.aclose()
    assert isinstance(first, AccessToken) and first.subject == "alice" and again == first
    assert issuer.count("/introspect") == 1


async def test_the_introspection_cache_lets_the_oldest_go_first(issuer: Issuer,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_oauth, "INTROSPECTION_CACHE_SIZE", 2)
    checking = checker(issuer, introspection=True)
    a, b, c = (opaque(issuer, name) for name in ("a", "b", "c"))
    try:
        for value in (a, b, c, c, b):
            assert isinstance(await checking.check(value), AccessToken)
        assert issuer.count("/introspect") == 3  # c and b were still cached
        assert isinstance(await checking.check(a), AccessToken)
        assert issuer.count("/introspect") == 4  # a, the oldest, had gone
    finally:
        await checking.aclose()


async def test_introspection_refusals_give_their_reason(issuer: Issuer) -> None:
    elsewhere = opaque(issuer, "bob", aud="https://other.example/mcp")
    assert await check(issuer, elsewhere, introspection=True) == Rejection(
        "invalid", "introspection: audience 'https://other.example/mcp' is not this resource")
    expired = opaque(issuer, "carol", exp=int(time.time()) - 60)
    assert await check(issuer, expired, introspection=True) == Rejection("expired", "introspection: token expired")
    assert await check(issuer, "never-issued-token-xyz", introspection=True) == Rejection(
        "invalid", "introspection: the token is not active")


async def test_an_opaque_token_without_introspection_configured_is_refused_saying_what_is_needed(
        issuer: Issuer) -> None:
    assert await check(issuer, opaque(issuer, "dave")) == Rejection(
        "invalid", "opaque token, and no introspection (the issuer's introspection_endpoint and "
                   "FLORA_OAUTH_CLIENT_ID/SECRET are needed)")
    assert issuer.count("/introspect") == 0 and issuer.count("/.well-known/oauth-authorization-server") == 0


class Clock:
    """The checker's clock, moved by the test: wall time plus `ahead` seconds."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


async def test_metadata_is_fetched_again_after_its_ttl_and_kept_with_a_warning_when_that_fails(
        issuer: Issuer, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    checking = checker(issuer, clock=clock)
    signed = token(issuer, sub="alice")
    metadata = "/.well-known/oauth-authorization-server"
    try:
        assert isinstance(await checking.check(signed), AccessToken)
        clock.ahead = METADATA_TTL - 5
        assert isinstance(await checking.issuer.metadata(), dict)
        assert issuer.count(metadata) == 1  # within its ttl: kept
        clock.ahead = METADATA_TTL + 5
        issuer.metadata_status = 503
        with caplog.at_level(logging.WARNING, logger="flora_mcp.hosted"):
            assert (await checking.issuer.metadata())["jwks_uri"] == f"{issuer.url}/jwks"
    finally:
        await checking.aclose()
    assert issuer.count(metadata) == 2
    assert [r.getMessage() for r in caplog.records if "could not be refreshed" in r.getMessage()] == [
        f"issuer metadata could not be refreshed ({issuer.url}{metadata}: 503; "
        f"{issuer.url}/.well-known/openid-configuration: 404); using what was fetched before"]


async def test_metadata_naming_another_issuer_is_not_used(issuer: Issuer) -> None:
    issuer.metadata_issuer = "https://mixed-up.example"
    checked = await check(issuer, token(issuer, sub="alice"))
    assert isinstance(checked, Rejection) and checked.reason == "unavailable"
    assert f"{issuer.url}/.well-known/oauth-authorization-server: another issuer" in checked.detail


async def test_a_token_without_kid_uses_the_only_key_without_fetching_the_keys_again(issuer: Issuer) -> None:
    clock = Clock()
    checking = checker(issuer, clock=clock)
    try:
        assert isinstance(await checking.check(token(issuer, sub="alice", kid=None)), AccessToken)
        clock.ahead = JWKS_REFETCH_COOLDOWN + 5  # past the cooldown, within the ttl
        assert isinstance(await checking.check(token(issuer, sub="alice", kid=None)), AccessToken)
    finally:
        await checking.aclose()
    assert issuer.count("/jwks") == 1


async def test_a_key_published_for_encryption_never_checks_a_signature(issuer: Issuer) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer.extra_keys = [{**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(other.public_key())), "kid": "enc-1",
                          "use": "enc", "alg": "RS256"}]
    now = int(time.time())
    signed = jwt.encode({"iss": issuer.url, "aud": RESOURCE, "exp": now + 600, "sub": "alice"}, other,
                        algorithm="RS256", headers={"kid": "enc-1", "typ": "at+jwt"})
    assert await check(issuer, signed) == Rejection("invalid", "no signing key 'enc-1' in the issuer's JWKS")


async def test_a_token_signed_with_another_algorithm_than_its_key_names_is_refused(issuer: Issuer) -> None:
    checked = await check(issuer, token(issuer, sub="alice", alg="RS384"))  # the JWK says RS256
    assert isinstance(checked, Rejection) and checked.reason == "invalid", checked


async def test_introspection_configured_but_not_published_by_the_issuer_is_refused_as_invalid(
        issuer: Issuer) -> None:
    issuer.introspection = False
    checked = await check(issuer, opaque(issuer, "erin"), introspection=True)
    assert checked == Rejection("invalid", "opaque token, and no introspection (the issuer's introspection_endpoint "
                                           "and FLORA_OAUTH_CLIENT_ID/SECRET are needed)")
    assert issuer.count("/introspect") == 0


def oauth_settings(**values: Any) -> Settings:
    return Settings(api_key="sk_live_rules", oauth_issuer="https://issuer.example", oauth_scopes="flora", **values)


def test_the_token_types_and_the_introspection_client_come_from_the_settings() -> None:
    listed = OAuthResource.from_settings(oauth_settings(oauth_token_type="at+jwt, Application/JWT",
                                                        oauth_client_id="flora-mcp",
                                                        oauth_client_secret="s3cret-value"), resource=RESOURCE)
    assert listed.token_types == frozenset({"at+jwt", "jwt"})
    assert (listed.client_id, listed.client_secret) == ("flora-mcp", "s3cret-value")
    anything = OAuthResource.from_settings(oauth_settings(oauth_token_type="any"), resource=RESOURCE)
    assert anything.token_types is None and anything.client_id is None


def test_the_resource_is_the_public_url_with_the_mcp_path_when_it_names_the_host_only() -> None:
    assert resource_url(" https://mcp.example.com/ ", "/mcp") == "https://mcp.example.com/mcp"
    assert resource_url("https://mcp.example.com/team/mcp/", "/mcp") == "https://mcp.example.com/team/mcp"
