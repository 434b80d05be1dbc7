"""What the OAuth tests share: a real authorization server (oidc-provider, `clients/oauth/provider.mjs`) as a process,
tokens from it, the `mcp` SDK's OAuth clients pointed at a hosted flora-mcp, and a scripted browser for them.

The authorization server signs RFC 9068 JWTs (RS256, `typ: at+jwt`) whose `aud` is the `resource` asked for; its
clients are listed at the top of provider.mjs. Login and consent are scripted by the server itself: following its
redirects signs in the authorize request's `login_hint`.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from flora_mcp.config import Settings
from flora_mcp.sandbox import Sandbox
from tests.support import settings_for

REPO = Path(__file__).resolve().parents[2]
RIG = REPO / "clients" / "oauth"
PROVIDER = RIG / "provider.mjs"
INSTALL = REPO / "clients" / "install.sh"
NPM_MISSING = 3
START_TIMEOUT = 30.0
INSTALL_TIMEOUT = 300.0
SCOPE = "flora:run"
OTHER_RESOURCE = "http://127.0.0.1:8001/other-api"
"""Another API the authorization server mints tokens for: a token for it must not open flora-mcp."""
M2M = ("m2m", "m2m-secret")
M2M_SHORT = ("m2m-short", "m2m-secret")
M2M_OPAQUE = ("m2m-opaque", "m2m-secret")
RESOURCE_SERVER = ("flora-rs", "rs-secret")
REDIRECT_URI = "http://127.0.0.1:3999/callback"


def install_rig() -> None:
    """`clients/install.sh --oauth` (instant once installed); without npm, fail under CI=true, else skip."""
    if shutil.which("bash") is None:
        _missing("bash is needed to run clients/install.sh")
    done = subprocess.run(["bash", str(INSTALL), "--oauth"], capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
                          stdin=subprocess.DEVNULL, check=False)
    if done.returncode == NPM_MISSING:
        _missing("npm is not installed, so the OAuth rig (clients/install.sh --oauth) cannot be installed")
    assert done.returncode == 0, f"clients/install.sh --oauth failed:\n{done.stdout}\n{done.stderr}"


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the OAuth tests must run in CI)", pytrace=False)
    pytest.skip(reason)


def node() -> str:
    """The Node 22 of clients/ when installed, else the machine's node (oidc-provider runs on 20 too)."""
    bundled = REPO / "clients" / "node_modules" / ".bin" / "node"
    found = str(bundled) if bundled.exists() else shutil.which("node")
    assert found, "node is not installed"
    return found


@dataclass
class AuthorizationServer:
    """A running oidc-provider: its issuer URL, and the clients' ways of getting tokens from it."""

    issuer: str
    proc: subprocess.Popen[str] = field(repr=False)
    errlog: IO[str] = field(repr=False)

    def token(self, client: tuple[str, str] = M2M, *, resource: str, scope: str | None = SCOPE) -> str:
        """A client_credentials access token for `resource` (no `scope`: a token with no scope at all)."""
        form = {"grant_type": "client_credentials", "resource": resource}
        if scope is not None:
            form["scope"] = scope
        answer = httpx.post(f"{self.issuer}/token", data=form, auth=client, timeout=10)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def jwks(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.issuer}/jwks", timeout=10).json())

    def log(self) -> str:
        self.errlog.flush()
        self.errlog.seek(0)
        return self.errlog.read()


@contextmanager
def authorization_server(**env: str) -> Iterator[AuthorizationServer]:
    """oidc-provider on a free loopback port for the block (provider.mjs's env: AT_TTL, SCOPE, MCP_RESOURCE...)."""
    with tempfile.TemporaryFile("w+") as errlog:
        proc = subprocess.Popen([node(), str(PROVIDER)], cwd=RIG, env={**os.environ, **env}, text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errlog)
        try:
            assert proc.stdout is not None
            lines: queue.Queue[str] = queue.Queue()
            threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()
            try:
                first = lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                raise AssertionError("oidc-provider did not start") from None
            yield AuthorizationServer(json.loads(first)["issuer"], proc, errlog)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()


def oauth_settings(box: Sandbox, issuer: str, **overrides: Any) -> Settings:
    """Hosted settings on a sandbox whose callers sign in with `issuer`."""
    return settings_for(box, oauth_issuer=issuer, **overrides)


class MemoryStorage:
    """The SDK's `TokenStorage`, in memory; remembers every token it was given."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.info: OAuthClientInformationFull | None = None
        self.history: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.info = client_info


class ScriptedBrowser:
    """The person at the browser: opens the authorization URL as `user`, follows the authorization server's
    redirects (keeping its cookies) up to the redirect URI, and hands the code to the SDK's callback."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.visits: list[str] = []
        self._callback: str | None = None

    async def redirect(self, authorization_url: str) -> None:
        self.visits.append(authorization_url)
        url = f"{authorization_url}&{urlencode({'login_hint': self.user})}"
        async with httpx.AsyncClient(timeout=10, follow_redirects=False) as browser:
            for _ in range(20):
                answer = await browser.get(url)
                assert answer.status_code in (302, 303), f"{answer.status_code} at {url}: {answer.text[:500]}"
                url = str(httpx.URL(url).join(answer.headers["location"]))
                if url.startswith(REDIRECT_URI):
                    self._callback = url
                    return
        raise AssertionError("the authorization server never redirected back")

    async def callback(self) -> AuthorizationCodeResult:
        assert self._callback is not None, "no redirect came back"
        query = parse_qs(urlsplit(self._callback).query)
        assert "error" not in query, query
        return AuthorizationCodeResult(code=query["code"][0], state=query["state"][0], iss=query.get("iss", [None])[0])


def machine_client(url: str, issuer: str, client: tuple[str, str] = M2M,
                   storage: MemoryStorage | None = None) -> ClientCredentialsOAuthProvider:
    """The SDK's client_credentials provider for flora-mcp at `url`."""
    return ClientCredentialsOAuthProvider(server_url=url, storage=storage or MemoryStorage(), client_id=client[0],
                                          client_secret=client[1], scope=SCOPE, issuer=issuer)


def person_client(url: str, browser: ScriptedBrowser, storage: MemoryStorage | None = None,
                  client_name: str = "flora-mcp tests") -> OAuthClientProvider:
    """The SDK's authorization-code + PKCE provider, registering itself (RFC 7591), signed in through `browser`."""
    metadata = OAuthClientMetadata(redirect_uris=[REDIRECT_URI], client_name=client_name,  # type: ignore[list-item]
                                   grant_types=["authorization_code", "refresh_token"], response_types=["code"],
                                   token_endpoint_auth_method="none")
    return OAuthClientProvider(server_url=url, client_metadata=metadata, storage=storage or MemoryStorage(),
                               redirect_handler=browser.redirect, callback_handler=browser.callback)


@asynccontextmanager
async def signed_in(url: str, auth: httpx2.Auth) -> AsyncIterator[Client]:
    """An MCP client of flora-mcp at `url` whose HTTP client signs in with `auth`."""
    async with httpx2.AsyncClient(auth=auth, timeout=30) as http, \
            Client(streamable_http_client(url, http_client=http)) as client:
        yield client
