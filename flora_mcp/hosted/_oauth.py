"""The OAuth 2.1 resource server: access tokens of one issuer, checked here, and the metadata that points clients to it.

    OAuthResource (FLORA_OAUTH_ISSUER, FLORA_PUBLIC_URL, FLORA_OAUTH_SCOPES, ...)
      -> TokenChecker.check(token)
           a JWT:    iss is the issuer -> its signing key (Issuer: metadata, then the JWKS, cached, fetched again for
                     an unknown `kid` at most every JWKS_REFETCH_COOLDOWN s) -> typ, alg, signature, aud == the
                     resource URL (RFC 8707), exp/nbf within the leeway
           opaque:   RFC 7662 introspection, when the issuer offers it and FLORA_OAUTH_CLIENT_ID is set
      -> the SDK's AccessToken (scopes, subject, claims), or a Rejection: `expired` (the client should refresh),
         `invalid` (nothing more is said to the caller; the log says why, never the token), `unavailable` (the
         issuer could not be reached: 503, try again)
    metadata_routes(): RFC 9728 protected resource metadata at the path form and the root form.

Errors: `IssuerUnavailable` (the issuer's metadata, keys or introspection could not be fetched) is the one exception
of this module; `TokenChecker.check` turns it into a Rejection, so callers see none.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import anyio
import httpx
import jwt
from mcp.server.auth.handlers.metadata import ProtectedResourceMetadataHandler
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl
from starlette.routing import Route

from flora_mcp._net import is_loopback_host
from flora_mcp.config import ConfigurationError, Settings

__all__ = ["ALGORITHMS", "IssuerUnavailable", "OAuthResource", "Rejection", "TokenChecker", "resource_url"]

log = logging.getLogger("flora_mcp.hosted.oauth")

ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
"""Signatures accepted: asymmetric only, so a token can never be signed with a key the issuer published (HS*, none)."""
METADATA_TTL = 3600.0
"""Seconds the issuer's metadata and keys are used before they are fetched again."""
JWKS_REFETCH_COOLDOWN = 30.0
"""Shortest seconds between two JWKS fetches caused by unknown `kid`s (a rotated key; or tokens made up to load us)."""
INTROSPECTION_CACHE_TTL = 60.0
"""Longest seconds an active introspection answer is reused (never past the token's exp)."""
INTROSPECTION_CACHE_SIZE = 4096
ISSUER_TIMEOUT = 10.0
ROOT_METADATA_PATH = "/.well-known/oauth-protected-resource"


class IssuerUnavailable(Exception):
    """The issuer's metadata, keys or introspection endpoint could not be reached or read."""


@dataclass(frozen=True)
class Rejection:
    """Why a token is refused: `reason` decides the answer, `detail` goes to the log only."""

    reason: Literal["expired", "invalid", "unavailable"]
    detail: str


def resource_url(public_url: str, mcp_path: str) -> str:
    """This server's resource identifier: FLORA_PUBLIC_URL, with `mcp_path` when it names the host only."""
    url = public_url.strip().rstrip("/")
    return url if urlsplit(url).path else url + mcp_path


@dataclass(frozen=True)
class OAuthResource:
    """What the resource server checks: the issuer, this resource's URL, the scopes, the `typ`s, the leeway."""

    issuer: str
    resource: str
    scopes: tuple[str, ...]
    token_types: frozenset[str] | None
    """Accepted `typ` header values, lower case without `application/`; None accepts any."""
    leeway: float = 10.0
    client_id: str | None = None
    client_secret: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, resource: str) -> OAuthResource:
        """The resource server for FLORA_OAUTH_*; `resource` is this server's MCP URL.

        Raises:
            ConfigurationError: the issuer is not an https URL (http only on loopback), or no scope is required.
        """
        issuer = (settings.oauth_issuer or "").strip()
        parts = urlsplit(issuer)
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_host(parts.hostname)):
            raise ConfigurationError(f"FLORA_OAUTH_ISSUER must be an https URL (http only on loopback): {issuer!r}")
        scopes = tuple(s for s in settings.oauth_scopes.replace(",", " ").split() if s)
        if not scopes:
            raise ConfigurationError("FLORA_OAUTH_SCOPES names no scope: a token for any purpose would be accepted.")
        types = {t.strip().lower().removeprefix("application/") for t in settings.oauth_token_type.split(",")}
        secret = settings.oauth_client_secret.get_secret_value() if settings.oauth_client_secret else None
        return cls(issuer=issuer, resource=resource, scopes=scopes,
                   token_types=None if "any" in types else frozenset(types - {""}), leeway=settings.oauth_leeway,
                   client_id=settings.oauth_client_id or None, client_secret=secret)

    @property
    def metadata_url(self) -> str:
        """RFC 9728's metadata URL for the resource (the path form), for `WWW-Authenticate`."""
        return str(build_resource_metadata_url(AnyHttpUrl(self.resource)))

    def metadata_routes(self, mcp_path: str) -> list[Route]:
        """The protected resource metadata at the path form of the public URL, of `mcp_path` (behind a proxy that
        strips a prefix), and at the root form some clients ask for first."""
        # Validated from strings, so that the model keeps a path-less issuer as it is: AnyHttpUrl on its own would
        # add a "/", and clients compare issuers exactly.
        metadata = ProtectedResourceMetadata.model_validate({
            "resource": self.resource, "authorization_servers": [self.issuer], "scopes_supported": list(self.scopes),
            "resource_name": "flora-mcp"})
        handler = ProtectedResourceMetadataHandler(metadata).handle
        paths = dict.fromkeys([urlsplit(self.metadata_url).path, ROOT_METADATA_PATH + mcp_path, ROOT_METADATA_PATH])
        return [Route(path, endpoint=handler, methods=["GET"]) for path in paths]


class TokenChecker:
    """Checks access tokens for one `OAuthResource`; implements the SDK's `TokenVerifier` too.

    Args:
        resource: what to check.
        http: the client for the issuer (tests); by default one of this module's own, closed by `aclose`.
        clock: seconds since the epoch (tests move it).
    """

    def __init__(self, resource: OAuthResource, *, http: httpx.AsyncClient | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.resource = resource
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=ISSUER_TIMEOUT, follow_redirects=False)
        self._clock = clock
        self.issuer = Issuer(resource.issuer, self._http, clock=clock)
        self._introspected: OrderedDict[str, tuple[float, AccessToken]] = OrderedDict()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def verify_token(self, token: str) -> AccessToken | None:
        """The SDK's `TokenVerifier`: the token's AccessToken, or None for any refusal."""
        checked = await self.check(token)
        return checked if isinstance(checked, AccessToken) else None

    async def check(self, token: str) -> AccessToken | Rejection:
        """Who `token` is from, or why it is refused (the scopes are the caller's to check)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            header = None
        try:
            if header is None:
                return await self._introspect(token)
            return await self._check_jwt(token, header)
        except IssuerUnavailable as exc:
            return Rejection("unavailable", str(exc))

    async def _check_jwt(self, token: str, header: Mapping[str, Any]) -> AccessToken | Rejection:
        wanted = self.resource.token_types
        typ = str(header.get("typ") or "").lower().removeprefix("application/")
        if wanted is not None and typ not in wanted:
            return Rejection("invalid", f"token typ {typ or 'absent'!r}, not {'/'.join(sorted(wanted))}")
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            return Rejection("invalid", f"token alg {str(alg)[:20]!r} is not accepted")
        try:
            claimed = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return Rejection("invalid", "token payload is not a JSON object")
        if claimed.get("iss") != self.resource.issuer:
            return Rejection("invalid", f"token issued by {str(claimed.get('iss'))[:200]!r}, not the configured issuer")
        kid = header.get("kid")
        key = await self.issuer.signing_key(kid if isinstance(kid, str) else None, str(alg))
        if key is None:
            return Rejection("invalid", f"no signing key {str(kid)[:80]!r} in the issuer's JWKS")
        try:
            claims = jwt.decode(token, key, algorithms=[str(alg)], audience=self.resource.resource,
                                issuer=self.resource.issuer, leeway=self.resource.leeway,
                                options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            return Rejection("expired", "token expired")
        except jwt.InvalidAudienceError:
            return Rejection("invalid", f"token audience {str(claimed.get('aud'))[:200]!r} is not this resource")
        except jwt.InvalidTokenError as exc:
            return Rejection("invalid", f"{type(exc).__name__}: {exc}")
        return self._access_token(token, claims)

    def _access_token(self, token: str, claims: Mapping[str, Any]) -> AccessToken | Rejection:
        subject = claims.get("sub") or claims.get("client_id") or claims.get("azp")
        if not isinstance(subject, str) or not subject:
            return Rejection("invalid", "token names no subject (sub, client_id)")
        scope = claims.get("scope", claims.get("scp", ""))
        scopes = scope.split() if isinstance(scope, str) else [str(s) for s in scope or []]
        exp = claims.get("exp")
        return AccessToken(token=token, client_id=str(claims.get("client_id") or claims.get("azp") or subject),
                           scopes=scopes, expires_at=int(exp) if isinstance(exp, int | float) else None,
                           resource=self.resource.resource, subject=subject, claims=dict(claims))

    async def _introspect(self, token: str) -> AccessToken | Rejection:
        res = self.resource
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = self._clock()
        cached = self._introspected.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        endpoint = None
        if res.client_id and res.client_secret:  # else nothing to fetch for a token that cannot be checked
            endpoint = (await self.issuer.metadata()).get("introspection_endpoint")
        if not isinstance(endpoint, str) or not res.client_id or not res.client_secret:
            return Rejection("invalid", "opaque token, and no introspection (the issuer's introspection_endpoint "
                                        "and FLORA_OAUTH_CLIENT_ID/SECRET are needed)")
        try:
            answer = await self._http.post(endpoint, data={"token": token, "token_type_hint": "access_token"},
                                           auth=(res.client_id, res.client_secret),
                                           headers={"Accept": "application/json"})
            data = answer.json() if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            raise IssuerUnavailable(f"introspection failed: {type(exc).__name__}") from None
        if not isinstance(data, dict):
            raise IssuerUnavailable(f"introspection answered {answer.status_code}")
        if data.get("active") is not True:
            return Rejection("invalid", "introspection: the token is not active")
        if data.get("iss", res.issuer) != res.issuer:
            return Rejection("invalid", "introspection: issued by another issuer")
        audience = data.get("aud")
        audiences = [audience] if isinstance(audience, str) else list(audience or [])
        if res.resource not in audiences:
            return Rejection("invalid", f"introspection: audience {str(audience)[:200]!r} is not this resource")
        exp = data.get("exp")
        if isinstance(exp, int | float) and exp + res.leeway < now:
            return Rejection("expired", "introspection: token expired")
        checked = self._access_token(token, data)
        if isinstance(checked, AccessToken):
            until = min(now + INTROSPECTION_CACHE_TTL, float(exp) if isinstance(exp, int | float) else now)
            self._introspected[digest] = (until, checked)
            while len(self._introspected) > INTROSPECTION_CACHE_SIZE:
                self._introspected.popitem(last=False)
        return checked


class Issuer:
    """One issuer's metadata (RFC 8414 or OpenID discovery) and signing keys, fetched when first needed, cached.

    Args:
        issuer: the issuer identifier, compared exactly with the metadata's and the tokens' `iss`.
        http: the client to fetch with.
        clock: seconds since the epoch.
    """

    def __init__(self, issuer: str, http: httpx.AsyncClient, *, clock: Callable[[], float] = time.time) -> None:
        self.issuer = issuer
        self._http = http
        self._clock = clock
        self._lock = anyio.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: dict[str | None, dict[str, Any]] = {}
        self._keys_at: float | None = None
        self.jwks_fetches = 0

    def discovery_urls(self) -> list[str]:
        """Where the metadata may be: RFC 8414's well-known URI, then OpenID Connect's two forms."""
        parts = urlsplit(self.issuer)
        origin, path = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
        urls = [f"{origin}/.well-known/oauth-authorization-server{path}",
                f"{origin}/.well-known/openid-configuration{path}"]
        if path:
            urls.append(f"{origin}{path}/.well-known/openid-configuration")
        return urls

    async def metadata(self) -> dict[str, Any]:
        """The issuer's metadata, fetched again after METADATA_TTL seconds.

        Raises:
            IssuerUnavailable: no discovery URL gave metadata of this issuer.
        """
        async with self._lock:
            if self._metadata is not None and self._clock() - self._metadata_at < METADATA_TTL:
                return self._metadata
            problems = []
            for url in self.discovery_urls():
                try:
                    answer = await self._http.get(url, headers={"Accept": "application/json"})
                    data = answer.json() if answer.status_code == 200 else None
                except (httpx.HTTPError, ValueError) as exc:
                    problems.append(f"{url}: {type(exc).__name__}")
                    continue
                if isinstance(data, dict) and data.get("issuer") == self.issuer:
                    self._metadata, self._metadata_at = data, self._clock()
                    return data
                problems.append(f"{url}: {answer.status_code}" if data is None else f"{url}: another issuer")
            if self._metadata is not None:
                log.warning("issuer metadata could not be refreshed (%s); using what was fetched before",
                            "; ".join(problems))
                return self._metadata
            raise IssuerUnavailable(f"no metadata for issuer {self.issuer} ({'; '.join(problems)})")

    async def signing_key(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        """The issuer's key `kid` for `alg` (the only key, for a token without a kid), or None when there is none.

        Raises:
            IssuerUnavailable: the JWKS could not be fetched and none was fetched before.
        """
        now = self._clock()
        stale = self._keys_at is None or now - self._keys_at >= METADATA_TTL
        unknown = kid not in self._keys and not (kid is None and len(self._keys) == 1)
        if stale or (unknown and now - (self._keys_at or 0.0) >= JWKS_REFETCH_COOLDOWN):
            await self._fetch_keys(seen_at=self._keys_at)
        data = self._keys.get(kid) if kid is not None or len(self._keys) != 1 else next(iter(self._keys.values()))
        if data is None:
            return None
        try:
            return jwt.PyJWK(data, algorithm=None if "alg" in data else alg)
        except jwt.PyJWKError as exc:
            log.warning("the issuer's key %r cannot check %s tokens: %s", kid, alg, exc)
            return None

    async def _fetch_keys(self, *, seen_at: float | None) -> None:
        jwks_uri = (await self.metadata()).get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise IssuerUnavailable(f"issuer {self.issuer} publishes no jwks_uri")
        async with self._lock:
            if self._keys_at != seen_at:
                return  # fetched by a concurrent request meanwhile: one fetch for a burst of requests
            try:
                answer = await self._http.get(jwks_uri, headers={"Accept": "application/json"})
                self.jwks_fetches += 1
                keys = answer.json().get("keys") if answer.status_code == 200 else None
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                keys, problem = None, type(exc).__name__
            else:
                problem = f"answered {answer.status_code}"
            if not isinstance(keys, list):
                if self._keys_at is None:
                    raise IssuerUnavailable(f"the issuer's JWKS {jwks_uri} {problem}")
                log.warning("the issuer's JWKS %s %s; using the keys fetched before", jwks_uri, problem)
                self._keys_at = self._clock()  # the cooldown holds for failures too
                return
            self._keys = {k.get("kid"): k for k in keys if isinstance(k, dict) and k.get("use", "sig") == "sig"}
            self._keys_at = self._clock()
