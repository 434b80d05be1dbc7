"""The real authorization server the OAuth tests share (one per session; a test that needs its own starts one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hosted.oauth_support import AuthorizationServer, authorization_server, install_rig


@pytest.fixture(scope="session")
def auth_server() -> Iterator[AuthorizationServer]:
    """oidc-provider from clients/oauth/, installed on first use, minting tokens for any loopback flora-mcp."""
    install_rig()
    with authorization_server() as server:
        yield server
