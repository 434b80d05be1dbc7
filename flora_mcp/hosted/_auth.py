"""Who is calling: OAuth access tokens, named bearer tokens checked in constant time, or each user's own FLORA key.

The modes, chosen at start-up, combine:

- open: no credentials (only ever on loopback; `serve_http` refuses anything else); everyone is `LOCAL`;
- tokens: `Authorization: Bearer <token>` is one of FLORA_MCP_TOKENS (`alice:tok1,bob:tok2`; a token without a name
  is a principal of its own); the server's own FLORA key serves everyone;
- OAuth: the bearer token is an access token of FLORA_OAUTH_ISSUER for this resource (`flora_mcp.hosted._oauth`),
  and the person it names is the principal; with tokens as well, a static token still admits its holder;
- per-user keys: the client's own FLORA key, from `X-Flora-Api-Key` or (without tokens or OAuth) `Authorization:
  Bearer`. With tokens or OAuth as well, the bearer token admits the client and `X-Flora-Api-Key` names its FLORA
  account.

A principal names whoever a credential stands for, without a secret in it: `token:alice`, `token:#<hash>`,
`oauth:<sub>@<issuer>`, `key:<account hash>`, or a token's or person's principal `+key:<account hash>`. Each
principal has its own runs, spend and tasks (`flora_mcp.hosted._pool`), and the SDK's transports tie each session to
the principal that opened it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.responses import JSONResponse, Response

from flora_mcp.config import ConfigurationError, Settings
from flora_mcp.core.runs import account_id
from flora_mcp.hosted._oauth import TokenChecker
from flora_mcp.logs import add_secret

__all__ = ["LOCAL", "AuthFailure", "AuthPolicy", "Caller", "StaticToken", "parse_tokens", "unauthorized"]

log = logging.getLogger("flora_mcp.hosted.auth")

KEY_HEADER = "x-flora-api-key"
REALM = "flora-mcp"
MAX_CREDENTIAL_LENGTH = 512
"""Longest FLORA key accepted."""
MAX_TOKEN_LENGTH = 8192
"""Longest bearer token accepted: identity providers' JWTs run to a few KB."""
LOCAL = "local"
"""The principal of every caller of an open (loopback, credential-free) server."""
TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: whose session it is, and the FLORA key to use (None: the server's own)."""

    principal: str
    flora_key: str | None = None

    def as_user(self) -> AuthenticatedUser:
        """The Starlette user the SDK's transports bind sessions to."""
        return AuthenticatedUser(AccessToken(token=self.principal, client_id=self.principal, scopes=[]))


@dataclass(frozen=True)
class AuthFailure:
    """Why a request is refused: RFC 6750's `error` (None when no credentials came at all) and the status."""

    description: str
    error: str | None = "invalid_token"
    status_code: int = 401


@dataclass(frozen=True)
class StaticToken:
    """One of FLORA_MCP_TOKENS: its secret, and the name its holder goes by (None: named by the token's hash)."""

    secret: str = field(repr=False)
    name: str | None = None

    @property
    def principal(self) -> str:
        return f"token:{self.name}" if self.name else f"token:#{_digest(self.secret)}"


def parse_tokens(raw: str) -> list[StaticToken]:
    """FLORA_MCP_TOKENS: comma-separated `name:token` or `token`; a name is 1-64 of `A-Za-z0-9_.@-`.

    Raises:
        ConfigurationError: one token is given twice under different names.
    """
    tokens: list[StaticToken] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, sep, secret = item.partition(":")
        token = StaticToken(secret.strip(), name) if sep and secret.strip() and TOKEN_NAME.fullmatch(name) else (
            StaticToken(item))
        if any(t.secret == token.secret and t.name != token.name for t in tokens):
            raise ConfigurationError("FLORA_MCP_TOKENS gives one token under two names; each token names one holder.")
        tokens.append(token)
    return tokens


class AuthPolicy:
    """Decides who a request is from, per the mode configured at start-up.

    Args:
        tokens: accepted bearer tokens (FLORA_MCP_TOKENS); a plain string is a token without a name.
        per_user_keys: each client sends its own FLORA key.
        base_url: FLORA's base URL, part of each per-user principal.
        oauth: the access-token checker, when FLORA_OAUTH_ISSUER is set.
    """

    def __init__(self, tokens: Sequence[StaticToken | str], *, per_user_keys: bool, base_url: str,
                 oauth: TokenChecker | None = None) -> None:
        self._tokens = [t if isinstance(t, StaticToken) else StaticToken(t) for t in tokens]
        self.per_user_keys = per_user_keys
        self.oauth = oauth
        self._base_url = base_url
        for token in self._tokens:
            add_secret(token.secret)
        if oauth is not None:
            add_secret(oauth.resource.client_secret)

    @classmethod
    def from_settings(cls, settings: Settings, *, per_user_keys: bool, oauth: TokenChecker | None = None
                      ) -> AuthPolicy:
        """The policy for FLORA_MCP_TOKENS, the --per-user-keys flag and, when given, an OAuth checker."""
        raw = settings.mcp_tokens.get_secret_value() if settings.mcp_tokens else ""
        return cls(parse_tokens(raw), per_user_keys=per_user_keys, base_url=settings.base_url, oauth=oauth)

    @property
    def has_tokens(self) -> bool:
        return bool(self._tokens)

    @property
    def bearer_admits(self) -> bool:
        """Whether `Authorization: Bearer` carries an admission token (static or OAuth) rather than a FLORA key."""
        return self.has_tokens or self.oauth is not None

    @property
    def shares_keys(self) -> bool:
        """Whether two principals may run on one FLORA key (then a run id FLORA knows may be another's)."""
        if self.per_user_keys and not self.bearer_admits:
            return False  # the key is the principal
        return self.oauth is not None or len({t.principal for t in self._tokens}) > 1

    @property
    def required(self) -> bool:
        """Whether any credential is asked for (it must be, off loopback)."""
        return self.bearer_admits or self.per_user_keys

    @property
    def mode(self) -> str:
        """A short name of the mode for the start-up log line."""
        admits = [name for name, on in (("OAuth", self.oauth is not None), ("bearer tokens", self.has_tokens)) if on]
        if self.per_user_keys:
            admits.append("per-user FLORA keys")
        return " + ".join(admits) or "no auth (loopback only)"

    async def authenticate(self, headers: Mapping[str, str]) -> Caller | AuthFailure:
        """The caller of a request with these (lower-case) headers, or why it is refused."""
        bearer = _bearer(headers.get("authorization"))
        principal = LOCAL
        if self.bearer_admits:
            if bearer is None:
                return AuthFailure("A bearer token is required.", error=None)
            admitted = await self._admit(bearer)
            if isinstance(admitted, AuthFailure):
                return admitted
            principal = admitted
        if not self.per_user_keys:
            return Caller(principal)
        key = headers.get(KEY_HEADER) or (None if self.bearer_admits else bearer)
        if not key:
            where = "X-Flora-Api-Key" if self.bearer_admits else "Authorization: Bearer or X-Flora-Api-Key"
            return AuthFailure(f"Send your FLORA API key ({where}).", error=None)
        key = key.strip()
        if not key or len(key) > MAX_CREDENTIAL_LENGTH or not key.isprintable():
            return AuthFailure("The FLORA API key is malformed.")
        account = account_id(self._base_url, key)
        if self.bearer_admits:
            return Caller(f"{principal}+key:{account}", key)
        return Caller(f"key:{account}", key)

    async def _admit(self, bearer: str) -> str | AuthFailure:
        """The principal a bearer token admits: a static token's, else an OAuth token's, else a refusal."""
        static = self._static_token(bearer)
        if static is not None:
            return static.principal
        if self.oauth is None:
            return AuthFailure("The bearer token is not valid.")
        checked = await self.oauth.check(bearer)
        if isinstance(checked, AccessToken):
            missing = [s for s in self.oauth.resource.scopes if s not in checked.scopes]
            if missing:
                log.info("refused an access token of %s without the scope %s", _oauth_principal(checked),
                         " ".join(missing))
                return AuthFailure(f"The access token lacks the scope {' '.join(missing)}.",
                                   error="insufficient_scope", status_code=403)
            return _oauth_principal(checked)
        log.warning("refused an access token: %s", checked.detail)
        if checked.reason == "expired":
            return AuthFailure("The access token has expired.")
        if checked.reason == "unavailable":
            return AuthFailure("The authorization server cannot be reached to check the token; try again shortly.",
                               error="temporarily_unavailable", status_code=503)
        return AuthFailure("The access token is not valid for this server.")

    def _static_token(self, candidate: str) -> StaticToken | None:
        given = candidate.encode()
        # Compare with every token, without stopping at a match, so timing tells nothing about which matched.
        matched: StaticToken | None = None
        for token in self._tokens:
            if hmac.compare_digest(given, token.secret.encode()):
                matched = token
        return matched

    def refuse(self, failure: AuthFailure) -> Response:
        """The answer to a refused request: RFC 6750's challenge, with RFC 9728's metadata URL under OAuth."""
        params = {}
        if self.oauth is not None:
            params = {"resource_metadata": self.oauth.resource.metadata_url,
                      "scope": " ".join(self.oauth.resource.scopes)}
        return unauthorized(failure, **params)


def unauthorized(failure: AuthFailure, **challenge: str) -> Response:
    """401 (or the failure's status) with the `WWW-Authenticate` challenge RFC 6750 asks for."""
    parts = [f'realm="{REALM}"']
    if failure.error:
        parts += [f'error="{failure.error}"', f'error_description="{failure.description}"']
    parts += [f'{name}="{value}"' for name, value in challenge.items()]
    body = {"error": failure.error or "unauthorized", "error_description": failure.description}
    headers = {"WWW-Authenticate": "Bearer " + ", ".join(parts)}
    if failure.status_code == 503:
        headers = {"Retry-After": "5"}
    return JSONResponse(body, status_code=failure.status_code, headers=headers)


def _oauth_principal(token: AccessToken) -> str:
    issuer = (token.claims or {}).get("iss", "")
    return f"oauth:{token.subject}@{issuer}"


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, credential = value.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or len(credential) > MAX_TOKEN_LENGTH:
        return None
    return credential


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]
