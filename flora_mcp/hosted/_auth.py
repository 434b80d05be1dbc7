"""Who is calling: bearer tokens checked in constant time, or each user's own FLORA key, and the 401 answer.

Three modes, chosen at start-up:

- open: no credentials (only ever on loopback; `serve_http` refuses anything else);
- tokens: `Authorization: Bearer <token>` must be one of FLORA_MCP_TOKENS; the server's own FLORA key serves everyone;
- per-user keys: the client's own FLORA key, from `X-Flora-Api-Key` or (without tokens) `Authorization: Bearer`.
  With tokens as well, the bearer token admits the client and `X-Flora-Api-Key` names its FLORA account.

A caller is identified by a principal (hashes only, never a secret), which the SDK's transports use to tie each
session to the credential that opened it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.responses import JSONResponse, Response

from flora_mcp.config import Settings
from flora_mcp.core.runs import account_id
from flora_mcp.logs import add_secret

__all__ = ["AuthFailure", "AuthPolicy", "Caller", "unauthorized"]

KEY_HEADER = "x-flora-api-key"
REALM = "flora-mcp"
MAX_CREDENTIAL_LENGTH = 512


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
    """Why a request is refused; `error` is RFC 6750's code, None when no credentials came at all."""

    description: str
    error: str | None = "invalid_token"


class AuthPolicy:
    """Decides who a request is from, per the mode configured at start-up.

    Args:
        tokens: accepted bearer tokens (FLORA_MCP_TOKENS); empty for none.
        per_user_keys: each client sends its own FLORA key.
        base_url: FLORA's base URL, part of each per-user principal.
    """

    def __init__(self, tokens: Sequence[str], *, per_user_keys: bool, base_url: str) -> None:
        self._tokens = [t.encode() for t in tokens]
        self.per_user_keys = per_user_keys
        self._base_url = base_url
        for token in tokens:
            add_secret(token)

    @classmethod
    def from_settings(cls, settings: Settings, *, per_user_keys: bool) -> AuthPolicy:
        """The policy for FLORA_MCP_TOKENS (comma-separated) and the --per-user-keys flag."""
        raw = settings.mcp_tokens.get_secret_value() if settings.mcp_tokens else ""
        tokens = [t.strip() for t in raw.split(",") if t.strip()]
        return cls(tokens, per_user_keys=per_user_keys, base_url=settings.base_url)

    @property
    def has_tokens(self) -> bool:
        return bool(self._tokens)

    @property
    def required(self) -> bool:
        """Whether any credential is asked for (it must be, off loopback)."""
        return self.has_tokens or self.per_user_keys

    @property
    def mode(self) -> str:
        """A short name of the mode for the start-up log line."""
        if self.has_tokens and self.per_user_keys:
            return "bearer tokens + per-user FLORA keys"
        if self.per_user_keys:
            return "per-user FLORA keys"
        return "bearer tokens" if self.has_tokens else "no auth (loopback only)"

    def authenticate(self, headers: Mapping[str, str]) -> Caller | AuthFailure:
        """The caller of a request with these (lower-case) headers, or why it is refused."""
        bearer = _bearer(headers.get("authorization"))
        principal = "local"
        if self.has_tokens:
            if bearer is None:
                return AuthFailure("A bearer token is required.", error=None)
            if not self._token_matches(bearer):
                return AuthFailure("The bearer token is not valid.")
            principal = "token:" + _digest(bearer)
        if not self.per_user_keys:
            return Caller(principal)
        key = headers.get(KEY_HEADER) or (None if self.has_tokens else bearer)
        if not key:
            where = "X-Flora-Api-Key" if self.has_tokens else "Authorization: Bearer or X-Flora-Api-Key"
            return AuthFailure(f"Send your FLORA API key ({where}).", error=None)
        key = key.strip()
        if not key or len(key) > MAX_CREDENTIAL_LENGTH or not key.isprintable():
            return AuthFailure("The FLORA API key is malformed.")
        account = account_id(self._base_url, key)
        if self.has_tokens:
            return Caller(f"{principal}|key:{account}", key)
        return Caller(f"key:{account}", key)

    def _token_matches(self, candidate: str) -> bool:
        given = candidate.encode()
        # Compare with every token, without stopping at a match, so timing tells nothing about which matched.
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(given, token)
        return matched


def unauthorized(failure: AuthFailure) -> Response:
    """401 with the `WWW-Authenticate` challenge RFC 6750 asks for."""
    challenge = f'Bearer realm="{REALM}"'
    if failure.error:
        challenge += f', error="{failure.error}", error_description="{failure.description}"'
    body = {"error": failure.error or "unauthorized", "error_description": failure.description}
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": challenge})


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, credential = value.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or len(credential) > MAX_CREDENTIAL_LENGTH:
        return None
    return credential


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]
