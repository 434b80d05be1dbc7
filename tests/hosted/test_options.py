"""The serving flags (`_options`): what counts as loopback, and the Host/Origin allow lists they make."""

from __future__ import annotations

import pytest

from flora_mcp.hosted import HostedOptions, is_loopback, transport_security


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True), ("127.0.0.2", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("mcp.example.com", False),
])
def test_only_loopback_addresses_count_as_local(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_default_allow_lists_are_loopback_on_our_port_plus_the_flags() -> None:
    security = transport_security(HostedOptions(host="10.0.0.5", allowed_hosts=("mcp.example.com", "a.b:9000"),
                                                allowed_origins=("https://app.example.com/",)), 8123)
    assert {"127.0.0.1:8123", "localhost:8123", "[::1]:8123", "10.0.0.5:8123", "mcp.example.com",
            "mcp.example.com:*", "a.b:9000"} == set(security.allowed_hosts)
    assert "http://localhost:8123" in security.allowed_origins
    assert "https://app.example.com" in security.allowed_origins
    assert not any(o.endswith(":*") for o in security.allowed_origins)
