"""Who a request is (`_auth`): the server's tokens, a per-user FLORA key from either header, or a refusal."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest

from flora_mcp.config import ConfigurationError, Settings
from flora_mcp.core.runs import account_id
from flora_mcp.hosted import AuthPolicy
from flora_mcp.hosted._auth import AuthFailure, Caller, StaticToken, parse_tokens, unauthorized
from flora_mcp.hosted._oauth import OAuthResource, TokenChecker
from flora_mcp.logs import REDACTED, redact
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


# The refusal on the wire (RFC 6750) --------------------------------------------------------------------------------


def test_a_refusal_is_a_bearer_challenge_with_the_error_and_its_description() -> None:
    response = unauthorized(AuthFailure("The bearer token is not valid."))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="flora-mcp", error="invalid_token", error_description="The bearer token is not valid."')
    assert json.loads(bytes(response.body)) == {"error": "invalid_token",
                                                "error_description": "The bearer token is not valid."}


def test_a_request_without_credentials_gets_the_bare_challenge() -> None:
    response = unauthorized(AuthFailure("A bearer token is required.", error=None), scope="flora:run")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="flora-mcp", scope="flora:run"'
    assert json.loads(bytes(response.body)) == {"error": "unauthorized",
                                                "error_description": "A bearer token is required."}


def test_an_unavailable_issuer_says_when_to_try_again_instead_of_challenging() -> None:
    response = unauthorized(AuthFailure("try again", error="temporarily_unavailable", status_code=503))
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert "WWW-Authenticate" not in response.headers
    assert json.loads(bytes(response.body))["error"] == "temporarily_unavailable"
    assert "Retry-After" not in unauthorized(AuthFailure("no", status_code=403)).headers


def test_under_oauth_the_challenge_names_the_metadata_and_the_scope() -> None:
    resource = OAuthResource(issuer="https://id.example.test", resource="https://mcp.example.test/mcp",
                             scopes=("flora:run", "flora:read"), token_types=None)
    policy = AuthPolicy([], per_user_keys=False, base_url="http://flora", oauth=TokenChecker(resource))
    challenge = policy.refuse(AuthFailure("A bearer token is required.", error=None)).headers["WWW-Authenticate"]
    assert challenge == ('Bearer realm="flora-mcp", resource_metadata="https://mcp.example.test/.well-known/'
                         'oauth-protected-resource/mcp", scope="flora:run flora:read"')
    bare = AuthPolicy([TOKEN], per_user_keys=False, base_url="http://flora")
    assert bare.refuse(AuthFailure("x", error=None)).headers["WWW-Authenticate"] == 'Bearer realm="flora-mcp"'


# Who is admitted, and the words of each refusal ----------------------------------------------------------------------


async def refused(policy: AuthPolicy, headers: dict[str, str]) -> AuthFailure:
    failure = await policy.authenticate(headers)
    assert isinstance(failure, AuthFailure), failure
    return failure


@pytest.mark.anyio
async def test_each_refusal_says_what_was_wrong() -> None:
    tokens = AuthPolicy([TOKEN], per_user_keys=False, base_url="http://flora")
    assert await refused(tokens, {}) == AuthFailure("A bearer token is required.", error=None)
    assert await refused(tokens, {"authorization": "Bearer nope"}) == AuthFailure("The bearer token is not valid.")
    keys = AuthPolicy([], per_user_keys=True, base_url="http://flora")
    assert await refused(keys, {}) == AuthFailure(
        "Send your FLORA API key (Authorization: Bearer or X-Flora-Api-Key).", error=None)
    assert await refused(keys, {"x-flora-api-key": "   "}) == AuthFailure("The FLORA API key is malformed.")
    both = AuthPolicy([TOKEN], per_user_keys=True, base_url="http://flora")
    assert await refused(both, {"authorization": f"Bearer {TOKEN}"}) == AuthFailure(
        "Send your FLORA API key (X-Flora-Api-Key).", error=None)


@pytest.mark.anyio
async def test_a_flora_key_may_be_512_characters_not_more() -> None:
    policy = AuthPolicy([], per_user_keys=True, base_url="http://flora")
    assert isinstance(await policy.authenticate({"x-flora-api-key": "k" * 512}), Caller)
    assert await refused(policy, {"x-flora-api-key": "k" * 513}) == AuthFailure("The FLORA API key is malformed.")


@pytest.mark.anyio
async def test_a_bearer_token_may_be_8192_characters_in_any_case_of_the_scheme() -> None:
    long = "t" * 8192
    policy = AuthPolicy([long, "short"], per_user_keys=False, base_url="http://flora")
    assert isinstance(await policy.authenticate({"authorization": f"Bearer {long}"}), Caller)
    assert isinstance(await policy.authenticate({"authorization": "bearer  short "}), Caller)
    for value in (f"Bearer {long}t", "Basic short", "Bearer ", "short"):
        assert await refused(policy, {"authorization": value}) == AuthFailure("A bearer token is required.",
                                                                              error=None), value


@pytest.mark.anyio
async def test_principals_name_the_token_its_hash_or_the_account_never_the_secret() -> None:
    named, unnamed = StaticToken("tok-of-alice-0001", "alice"), StaticToken("tok-without-name-2")
    policy = AuthPolicy([named, unnamed], per_user_keys=False, base_url="http://flora")
    assert await policy.authenticate({"authorization": "Bearer tok-of-alice-0001"}) == Caller("token:alice")
    digest = hashlib.sha256(b"tok-without-name-2").hexdigest()[:16]
    assert await policy.authenticate({"authorization": "Bearer tok-without-name-2"}) == Caller(f"token:#{digest}")
    with_keys = AuthPolicy([named], per_user_keys=True, base_url="http://flora")
    caller = await with_keys.authenticate({"authorization": "Bearer tok-of-alice-0001", "x-flora-api-key": TEST_KEY})
    assert caller == Caller(f"token:alice+key:{account_id('http://flora', TEST_KEY)}", TEST_KEY)


@pytest.mark.anyio
async def test_one_key_is_a_different_account_on_another_flora() -> None:
    here = await AuthPolicy([], per_user_keys=True, base_url="http://flora").authenticate({"x-flora-api-key": "k1"})
    there = await AuthPolicy([], per_user_keys=True, base_url="http://other").authenticate({"x-flora-api-key": "k1"})
    assert here == Caller(f"key:{account_id('http://flora', 'k1')}", "k1")
    assert isinstance(there, Caller) and there.principal != here.principal  # type: ignore[union-attr]


def test_the_tokens_and_the_oauth_client_secret_are_redacted_everywhere_once_a_policy_holds_them() -> None:
    # New to this process, however often the test runs in it.
    token, secret = f"plain0token0{uuid.uuid4().hex}", f"plain0secret0{uuid.uuid4().hex}"
    assert redact(f"{token} {secret}") == f"{token} {secret}"
    resource = OAuthResource(issuer="https://id.example.test", resource="https://mcp.example.test/mcp",
                             scopes=("flora:run",), token_types=None, client_id="rs", client_secret=secret)
    AuthPolicy([StaticToken(token, "ops")], per_user_keys=False, base_url="http://flora",
               oauth=TokenChecker(resource))
    assert redact(f"{token} {secret}") == f"{REDACTED} {REDACTED}"


@pytest.mark.anyio
async def test_tokens_come_from_the_settings_with_their_names() -> None:
    settings = Settings(api_key=TEST_KEY, mcp_tokens="alice:tok-a-0001, ,tok-b-0002,,bob:tok-c-0003")
    policy = AuthPolicy.from_settings(settings, per_user_keys=False)
    assert policy.mode == "bearer tokens" and policy.shares_keys
    principals = [await policy.authenticate({"authorization": f"Bearer {t}"})
                  for t in ("tok-a-0001", "tok-b-0002", "tok-c-0003")]
    assert principals == [Caller("token:alice"), Caller(StaticToken("tok-b-0002").principal), Caller("token:bob")]
    assert AuthPolicy.from_settings(Settings(api_key=TEST_KEY), per_user_keys=False).required is False


def test_one_token_under_two_names_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_tokens("alice:tok-1,bob:tok-1")
    assert str(raised.value) == "FLORA_MCP_TOKENS gives one token under two names; each token names one holder."
