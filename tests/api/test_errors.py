from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from flora_mcp.api.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    IdempotencyError,
    InsufficientCreditsError,
    NotFoundError,
    RateLimitError,
    ServerError,
    UploadError,
    error_from_response,
)
from flora_mcp.logs import REDACTED

# Not shaped like a FLORA key and never registered: only the request's own Authorization header can hide it.
TOKEN = "tok-echoed0by0the0server0x7"
ENDPOINT = "POST /techniques/t/runs"


def answer(status: int, body: Any = None, *, content: bytes | None = None, headers: dict[str, str] | None = None,
           token: str | None = TOKEN) -> httpx.Response:
    """A response as httpx hands it over: with the request it answers (carrying `token` as a bearer token)."""
    request = httpx.Request("POST", "https://flora.test/techniques/t/runs",
                            headers={"Authorization": f"Bearer {token}"} if token else {})
    if body is not None:
        content = json.dumps(body).encode()
    # No Content-Type unless given: the header is optional and its absence must not break the parsing.
    return httpx.Response(status, content=content or b"", headers=headers or {}, request=request)


def test_a_server_that_echoes_the_bearer_token_does_not_put_it_into_the_error() -> None:
    body = {"error": {"code": "invalid_api_key", "message": f"token {TOKEN} is revoked",
                      "fields": [{"field": f"header {TOKEN}", "message": f"{TOKEN} unknown"}]}}
    error = error_from_response(answer(401, body), endpoint=ENDPOINT)
    assert isinstance(error, AuthenticationError)
    assert error.message == f"token {REDACTED} is revoked"
    assert error.fields == [{"field": f"header {REDACTED}", "message": f"{REDACTED} unknown"}]


def test_without_an_authorization_header_nothing_is_redacted() -> None:
    body = {"error": {"code": "unauthorized", "message": "no key given", "fields": [{"field": "a", "message": "b"}]}}
    error = error_from_response(answer(401, body, token=None), endpoint=ENDPOINT)
    assert error.message == "no key given"
    assert error.fields == [{"field": "a", "message": "b"}]


def test_a_response_built_without_its_request_still_becomes_an_error() -> None:
    response = httpx.Response(404, json={"error": {"code": "not_found", "message": "no such run"}})
    error = error_from_response(response, endpoint=ENDPOINT)
    assert isinstance(error, NotFoundError) and error.message == "no such run"


def test_an_envelope_without_a_code_takes_it_from_the_status_or_calls_it_unknown() -> None:
    error = error_from_response(answer(402, {"error": {"message": "top up"}}), endpoint=ENDPOINT)
    assert isinstance(error, InsufficientCreditsError) and error.code == "insufficient_credits"
    error = error_from_response(answer(503, {"error": {"message": "busy"}}), endpoint=ENDPOINT)
    assert isinstance(error, ServerError) and error.code == "unknown_error"
    assert error.message == "busy" and error.status_code == 503 and error.endpoint == ENDPOINT


def test_an_envelope_without_a_message_says_the_status() -> None:
    error = error_from_response(answer(500, {"error": {"code": "unknown_error"}}), endpoint=ENDPOINT)
    assert error.message == "HTTP 500"


def test_missing_field_parts_become_empty_strings_and_junk_fields_are_dropped() -> None:
    body = {"error": {"code": "input_validation_error", "message": "bad",
                      "fields": [{"message": "required"}, {"field": "prompt"}, "junk", 3]}}
    error = error_from_response(answer(400, body), endpoint=ENDPOINT)
    assert isinstance(error, BadRequestError)
    assert error.fields == [{"field": "", "message": "required"}, {"field": "prompt", "message": ""}]


def test_fields_that_are_not_a_list_are_ignored() -> None:
    body = {"error": {"code": "input_validation_error", "message": "bad", "fields": {"field": "prompt"}}}
    assert error_from_response(answer(400, body), endpoint=ENDPOINT).fields == []


def test_the_request_id_comes_from_request_id_or_x_request_id() -> None:
    body = {"error": {"code": "not_found", "message": "gone"}}
    assert error_from_response(answer(404, body, headers={"request-id": "req_1"}), endpoint=ENDPOINT).request_id == (
        "req_1")
    assert error_from_response(answer(404, body, headers={"x-request-id": "req_2"}), endpoint=ENDPOINT).request_id == (
        "req_2")
    assert error_from_response(answer(404, body), endpoint=ENDPOINT).request_id is None


def test_an_error_given_as_text_with_code_and_message_beside_it() -> None:
    body = {"error": "rate limited", "code": "rate_limited", "message": "slow down"}
    error = error_from_response(answer(429, body), endpoint=ENDPOINT, retry_after=2.0)
    assert isinstance(error, RateLimitError)
    assert (error.code, error.message, error.retry_after) == ("rate_limited", "slow down", 2.0)
    # The code beside the text wins over the status's own.
    error = error_from_response(answer(400, {"error": "bad", "code": "invalid_json"}), endpoint=ENDPOINT)
    assert isinstance(error, BadRequestError) and (error.code, error.message) == ("invalid_json", "bad")


def test_an_error_given_as_bare_text() -> None:
    error = error_from_response(answer(403, {"error": "not yours"}), endpoint=ENDPOINT)
    assert (error.code, error.message) == ("forbidden", "not yours")


def test_a_bare_code_and_message_with_fields_is_an_envelope() -> None:
    body = {"code": "not_found", "message": "no such technique", "fields": [{"field": "ref", "message": "unknown"}]}
    error = error_from_response(answer(404, body), endpoint=ENDPOINT)
    assert isinstance(error, NotFoundError)
    assert error.message == "no such technique"
    assert error.fields == [{"field": "ref", "message": "unknown"}]
    # Decided on the code given, not the status: a 422 that says idempotency_conflict means the run exists.
    error = error_from_response(answer(422, {"code": "idempotency_conflict", "message": "key reused"}),
                                endpoint=ENDPOINT)
    assert isinstance(error, IdempotencyError) and error.code == "idempotency_conflict"


def test_a_bare_message_without_a_code_is_an_envelope_from_400_on() -> None:
    error = error_from_response(answer(400, {"message": "prompt is required"}), endpoint=ENDPOINT)
    assert isinstance(error, BadRequestError)
    assert (error.code, error.message) == ("input_validation_error", "prompt is required")


@pytest.mark.parametrize("body", [{"detail": "x"}, {"message": 3}, ["not", "an", "object"]])
def test_json_that_is_no_envelope_is_described_by_status_and_content_type(body: Any) -> None:
    response = answer(500, body, headers={"content-type": "application/json; charset=utf-8"})
    error = error_from_response(response, endpoint=ENDPOINT)
    assert isinstance(error, ServerError) and error.code == "unknown_error" and error.fields == []
    assert error.message == "HTTP 500 Internal Server Error without FLORA's error envelope (application/json)"


def test_an_answer_without_a_content_type_says_so() -> None:
    error = error_from_response(answer(502, content=b"<html>bad gateway</html>"), endpoint=ENDPOINT)
    assert error.message == "HTTP 502 Bad Gateway without FLORA's error envelope (no content type)"


def test_an_unknown_status_without_an_envelope_is_a_server_error() -> None:
    error = error_from_response(answer(418, content=b"teapot", headers={"content-type": "text/plain"}),
                                endpoint=ENDPOINT)
    assert type(error) is ServerError and error.code == "unknown_error"


def test_a_bucket_xml_error_without_a_message_names_its_code() -> None:
    response = answer(403, content=b"<Error><Code>AccessDenied</Code></Error>",
                      headers={"content-type": "application/xml"})
    error = error_from_response(response, endpoint="PUT upload")
    assert error.message == "the upload target said AccessDenied"
    assert error.code == "forbidden"


def test_a_bucket_xml_error_with_a_message_and_entities() -> None:
    response = answer(400, content=b"<Error><Code>Entity&amp;Too</Code><Message>over 5 &lt;GB&gt;</Message></Error>",
                      headers={"content-type": "text/xml"})
    error = error_from_response(response, endpoint="PUT upload")
    assert error.message == "the upload target said Entity&Too: over 5 <GB>"


def test_defaults_of_the_error_tree() -> None:
    assert APIError("m").endpoint == "" and APIError("m").request_id is None
    assert APIStatusError("m", status_code=500, code="x").endpoint == ""
    connection = APIConnectionError("reset")
    # A connection error is presumed to have reached FLORA unless the caller knows it did not.
    assert connection.endpoint == "" and connection.maybe_sent is True and connection.outcome_unknown


def test_an_upload_error_was_sent_when_an_asset_exists_unless_told() -> None:
    assert UploadError("refused here").sent is False
    failed = UploadError("failed", asset_id="ast_1", status="failed", failure_message="corrupt")
    assert (failed.sent, failed.status, failed.failure_message) == (True, "failed", "corrupt")
    assert UploadError("left, no asset", sent=True).sent is True
    assert UploadError("never left", asset_id="ast_2", sent=False).sent is False
