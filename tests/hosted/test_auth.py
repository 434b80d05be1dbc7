"""Who a request is (`_auth`): the server's tokens, a per-user FLORA key from either header, or a refusal."""

from __future__ import annotations

import pytest

from flora_mcp.hosted import AuthPolicy
from flora_mcp.hosted._auth import AuthFailure, Caller
from tests.hosted.hosted_support import TOKEN
from tests.support import TEST_KEY


@pytest.mark.parametrize(("headers", "expected"), [
    pytest.param({"authorization": f"Bearer {TEST_KEY}"}, "key", id="bearer-key"),
    pytest.param({"x-flora-api-key": TEST_KEY}, "key", id="header-key"),
    pytest.param({"x-flora-api-key": TEST_KEY, "authorization": "Bearer other"}, "key", id="header-wins"),
    pytest.param({}, None, id="nothing"),
    pytest.param({"x-flora-api-key": "bad\nkey"}, "invalid_token", id="malformed"),
])
@pytest.mark.anyio
async def test_per_user_keys_come_from_either_header(headers: dict[str, str], expected: str | None) -> None:
    policy = AuthPolicy([], per_user_keys=True, base_url="http://flora")
    caller = await policy.authenticate(headers)
    if expected == "key":
        assert isinstance(caller, Caller) and caller.flora_key == TEST_KEY
        assert TEST_KEY not in caller.principal and caller.principal.startswith("key:")
    else:
        assert isinstance(caller, AuthFailure) and caller.error == expected


@pytest.mark.anyio
async def test_with_tokens_and_per_user_keys_the_token_admits_and_the_header_names_the_key() -> None:
    policy = AuthPolicy([TOKEN], per_user_keys=True, base_url="http://flora")
    assert isinstance(await policy.authenticate({"authorization": f"Bearer {TEST_KEY}"}), AuthFailure)
    assert isinstance(await policy.authenticate({"authorization": f"Bearer {TOKEN}"}), AuthFailure)
    caller = await policy.authenticate({"authorization": f"Bearer {TOKEN}", "x-flora-api-key": TEST_KEY})
    assert isinstance(caller, Caller) and caller.flora_key == TEST_KEY and TOKEN not in caller.principal
