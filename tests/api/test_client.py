"""FloraClient against `httpx.MockTransport`: error mapping, retries, idempotency keys, pagination, headers, secrecy.

Each handler is a script of answers, one per request, and keeps every request it saw, so a test asserts both what the
client returned or raised and exactly what it sent, how often.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from flora_mcp._version import __version__
from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import (
    APIConnectionError,
    APIError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    IdempotencyError,
    InsufficientCreditsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from flora_mcp.api.models import Technique
from flora_mcp.api.retry import RetryPolicy

KEY = "sk_live_CLIENT0unit0test0key0never0shown"
BASE = "https://flora.test/api/v1"
RID = "req_0123456789"
TECHNIQUE = Technique.model_validate({
    "technique_id": "tech_cctv", "slug": "cctv-cam", "name": "CCTV Cam", "run_cost": 0.05,
    "inputs": [{"id": "input_image", "type": "imageUrl"}, {"id": "caption", "type": "text"}],
    "outputs": [{"id": "output_image", "type": "imageUrl"}],
})
RUN = {"run_id": "run_1", "status": "pending", "progress": 0, "poll_url": "/api/v1/techniques/cctv-cam/runs/run_1"}

Answer = Callable[[httpx.Request], httpx.Response]


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    return lambda request: httpx.Response(status, json=body, headers={"request-id": RID, **(headers or {})})


def fail(status: int, code: str | None = None, message: str = "refused", *, headers: dict[str, str] | None = None,
         fields: list[dict[str, str]] | None = None) -> Answer:
    """FLORA's error envelope; `code=None` answers a body that is not the envelope (a proxy's HTML page)."""
    if code is None:
        return lambda request: httpx.Response(status, text="<html>Bad Gateway</html>",
                                              headers={"content-type": "text/html", **(headers or {})})
    error: dict[str, Any] = {"code": code, "message": message, **({"fields": fields} if fields else {})}
    return lambda request: httpx.Response(status, json={"error": error}, headers={"request-id": RID, **(headers or {})})


def html(status: int = 200) -> Answer:
    return lambda request: httpx.Response(status, text="<html>a captive portal</html>",
                                          headers={"content-type": "text/html"})


def raises(kind: type[httpx.TransportError], text: str = "boom") -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        raise kind(text, request=request)

    return answer


class Script:
    """A MockTransport handler: the answers in order (the last one repeats); every request, and when it came."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(time.monotonic())
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


@dataclass(frozen=True)
class RecordingPolicy(RetryPolicy):
    """The real policy, with tiny backoff, remembering every wait it chose."""

    initial_delay: float = 0.001
    max_delay: float = 0.002
    waits: list[float] = field(default_factory=list)

    def delay(self, error: APIError, *, attempt: int) -> float:
        wait = super().delay(error, attempt=attempt)
        self.waits.append(wait)
        return wait


def flora(script: Script, *, max_retries: int = 3) -> FloraClient:
    return FloraClient(api_key=KEY, base_url=BASE, transport=httpx.MockTransport(script),
                       retry=RecordingPolicy(max_retries=max_retries))


async def create(client: FloraClient, key: str = "idem_0001") -> Any:
    return await client.create_run(TECHNIQUE, {"input_image": "https://x.test/a.png", "caption": "hi"},
                                   idempotency_key=key)


# Status -> exception --------------------------------------------------------------------------------------------

STATUS_MAPPING = [
    pytest.param(fail(400, "input_validation_error"), BadRequestError, 400, "input_validation_error", id="400"),
    pytest.param(fail(422, "input_validation_error"), BadRequestError, 422, "input_validation_error", id="422"),
    pytest.param(fail(400, "invalid_json"), BadRequestError, 400, "invalid_json", id="400 invalid_json"),
    pytest.param(fail(401, "unauthorized"), AuthenticationError, 401, "unauthorized", id="401"),
    pytest.param(fail(401, "invalid_api_key"), AuthenticationError, 401, "invalid_api_key", id="401 invalid_api_key"),
    pytest.param(fail(402, "insufficient_credits"), InsufficientCreditsError, 402, "insufficient_credits", id="402"),
    pytest.param(fail(403, "forbidden"), PermissionDeniedError, 403, "forbidden", id="403"),
    pytest.param(fail(404, "not_found"), NotFoundError, 404, "not_found", id="404"),
    pytest.param(fail(409, "idempotency_duplicate"), IdempotencyError, 409, "idempotency_duplicate", id="409"),
    pytest.param(fail(422, "idempotency_conflict"), IdempotencyError, 422, "idempotency_conflict",
                 id="422 idempotency_conflict"),
    pytest.param(fail(429, "rate_limited"), RateLimitError, 429, "rate_limited", id="429"),
    pytest.param(fail(500, "unknown_error"), ServerError, 500, "unknown_error", id="500"),
    pytest.param(fail(403, "insufficient_credits"), InsufficientCreditsError, 403, "insufficient_credits",
                 id="the code decides, not the status"),
    pytest.param(fail(404, "technique_gone"), NotFoundError, 404, "technique_gone", id="unknown code: by status"),
    pytest.param(fail(418, "teapot"), ServerError, 418, "teapot", id="unknown code and status"),
    pytest.param(fail(502), ServerError, 502, "unknown_error", id="502 html without envelope"),
    pytest.param(fail(401), AuthenticationError, 401, "unauthorized", id="401 without envelope"),
    pytest.param(fail(429), RateLimitError, 429, "rate_limited", id="429 without envelope"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("answer", "cls", "status", "code"), STATUS_MAPPING)
async def test_an_error_status_becomes_its_exception(answer: Answer, cls: type[APIStatusError], status: int,
                                                     code: str) -> None:
    script = Script(answer)
    async with flora(script, max_retries=0) as client:
        with pytest.raises(APIStatusError) as raised:
            await client.get_technique("cctv-cam")
    error = raised.value
    assert type(error) is cls
    assert (error.status_code, error.code, error.endpoint) == (status, code, "GET /techniques/{id}")
    if "request-id" in answer(script.requests[0]).headers:
        assert error.request_id == RID
    assert len(script.requests) == 1


@pytest.mark.anyio
async def test_field_errors_and_retry_after_are_carried() -> None:
    fields = [{"field": "inputs.input_image", "message": "must be a URL"}]
    async with flora(Script(fail(422, "input_validation_error", fields=fields)), max_retries=0) as client:
        with pytest.raises(BadRequestError) as bad:
            await create(client)
    assert bad.value.fields == fields
    async with flora(Script(fail(429, "rate_limited", headers={"Retry-After": "7"})), max_retries=0) as client:
        with pytest.raises(RateLimitError) as limited:
            await client.get_technique("cctv-cam")
    assert limited.value.retry_after == 7.0


UNUSABLE_ANSWERS = [
    pytest.param(html(200), "not JSON", id="html 200"),
    pytest.param(ok({"unexpected": True}), "unexpected answer", id="json without the fields"),
    pytest.param(lambda r: httpx.Response(302, headers={"location": "https://elsewhere.test/"}), "redirect",
                 id="redirect is not followed"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("answer", "words"), UNUSABLE_ANSWERS)
async def test_an_unusable_answer_is_a_response_error(answer: Answer, words: str) -> None:
    script = Script(answer)
    async with flora(script, max_retries=0) as client:
        with pytest.raises(APIResponseError, match=words):
            await client.get_technique("cctv-cam")
    assert [str(r.url) for r in script.requests] == [f"{BASE}/techniques/cctv-cam"]


@pytest.mark.anyio
@pytest.mark.parametrize(("answer", "cls", "maybe_sent"), [
    pytest.param(raises(httpx.ConnectError), APIConnectionError, False, id="connect: never sent"),
    pytest.param(raises(httpx.ConnectTimeout), APITimeoutError, False, id="connect timeout: never sent"),
    pytest.param(raises(httpx.ReadError), APIConnectionError, True, id="reset: maybe sent"),
    pytest.param(raises(httpx.RemoteProtocolError), APIConnectionError, True, id="dropped: maybe sent"),
    pytest.param(raises(httpx.ReadTimeout), APITimeoutError, True, id="read timeout: maybe sent"),
    pytest.param(raises(httpx.WriteTimeout), APITimeoutError, True, id="write timeout: maybe sent"),
])
async def test_a_transport_failure_says_whether_the_request_may_have_left(
        answer: Answer, cls: type[APIConnectionError], maybe_sent: bool) -> None:
    async with flora(Script(answer), max_retries=0) as client:
        with pytest.raises(APIConnectionError) as raised:
            await create(client)
    assert type(raised.value) is cls and raised.value.maybe_sent is maybe_sent
    assert raised.value.endpoint == "POST /techniques/{id}/runs"


# Retries ----------------------------------------------------------------------------------------------------------

RETRIES = [
    *[pytest.param([fail(s, c)], 2, None, id=f"{s} retried") for s, c in
      ((408, "request_timeout"), (429, "rate_limited"), (500, "unknown_error"), (502, "bad_gateway"),
       (503, "unavailable"), (504, "gateway_timeout"))],
    pytest.param([fail(502)], 2, None, id="html 502 retried"),
    pytest.param([html(200)], 2, None, id="unreadable 200 retried"),
    pytest.param([raises(httpx.ConnectError)], 2, None, id="connect error retried"),
    pytest.param([raises(httpx.ReadError)], 2, None, id="reset retried"),
    pytest.param([raises(httpx.ReadTimeout)], 2, None, id="timeout retried"),
    pytest.param([fail(503, "unavailable"), raises(httpx.ReadError), fail(429, "rate_limited")], 4, None,
                 id="three failures, then success"),
    *[pytest.param([fail(s, c)], 1, cls, id=f"{s} never retried") for s, c, cls in
      ((400, "input_validation_error", BadRequestError), (401, "unauthorized", AuthenticationError),
       (402, "insufficient_credits", InsufficientCreditsError), (403, "forbidden", PermissionDeniedError),
       (404, "not_found", NotFoundError), (409, "idempotency_duplicate", IdempotencyError),
       (422, "input_validation_error", BadRequestError))],
    pytest.param([fail(503, "unavailable")] * 5, 4, ServerError, id="gives up after max_retries"),
    pytest.param([fail(429, "rate_limited", headers={"Retry-After": "3600"})], 1, RateLimitError,
                 id="Retry-After past the cap is not waited for"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("failures", "requests", "raised"), RETRIES)
async def test_what_a_read_retries(failures: list[Answer], requests: int, raised: type[APIError] | None) -> None:
    script = Script(*failures, ok({"technique_id": "tech_cctv", "slug": "cctv-cam", "inputs": []}))
    async with flora(script) as client:
        if raised is None:
            assert (await client.get_technique("cctv-cam")).technique_id == "tech_cctv"
        else:
            with pytest.raises(raised):
                await client.get_technique("cctv-cam")
    assert len(script.requests) == requests


@pytest.mark.anyio
@pytest.mark.parametrize(("headers", "wait"), [
    pytest.param({"Retry-After": "0.05"}, 0.05, id="Retry-After seconds"),
    pytest.param({"retry-after-ms": "40", "Retry-After": "30"}, 0.04, id="retry-after-ms first"),
])
async def test_retry_after_is_honoured(headers: dict[str, str], wait: float) -> None:
    script = Script(fail(429, "rate_limited", headers=headers), ok(RUN, 201))
    client = flora(script)
    async with client:
        assert (await create(client)).run_id == "run_1"
    assert isinstance(client.retry, RecordingPolicy) and client.retry.waits == [wait]
    assert script.times[1] - script.times[0] >= wait


CREATE_FAILURES = [
    pytest.param(fail(503, "unavailable"), id="503"),
    pytest.param(fail(500, "unknown_error"), id="500"),
    pytest.param(fail(429, "rate_limited", headers={"Retry-After": "0"}), id="429"),
    pytest.param(raises(httpx.ConnectError), id="connect error: never sent"),
    pytest.param(raises(httpx.ReadError), id="reset: ambiguous"),
    pytest.param(raises(httpx.ReadTimeout), id="read timeout: ambiguous"),
    pytest.param(html(200), id="unreadable 200: ambiguous"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("failure", CREATE_FAILURES)
async def test_a_create_is_retried_with_the_same_idempotency_key(failure: Answer) -> None:
    script = Script(failure, failure, ok(RUN, 201))
    async with flora(script) as client:
        run = await create(client, key="idem_same_on_every_attempt")
    assert run.run_id == "run_1" and run.poll_url == f"{BASE}/techniques/cctv-cam/runs/run_1"
    assert len(script.requests) == 3
    assert [r.headers["Idempotency-Key"] for r in script.requests] == ["idem_same_on_every_attempt"] * 3
    bodies = script.bodies()
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["idempotency_key"] == "idem_same_on_every_attempt"
    assert bodies[0]["inputs"] == [{"id": "input_image", "type": "imageUrl", "value": "https://x.test/a.png"},
                                   {"id": "caption", "type": "text", "value": "hi"}]


@pytest.mark.anyio
async def test_a_create_after_an_ambiguous_failure_stops_at_the_duplicate() -> None:
    """The first attempt may have made the run; FLORA says so on the retry, and the client does not go on."""
    script = Script(raises(httpx.ReadError), fail(409, "idempotency_duplicate"), ok(RUN, 201))
    async with flora(script) as client:
        with pytest.raises(IdempotencyError):
            await create(client, key="idem_once")
    assert [r.headers["Idempotency-Key"] for r in script.requests] == ["idem_once", "idem_once"]


@pytest.mark.anyio
@pytest.mark.parametrize(("failure", "cls"), [
    pytest.param(fail(400, "input_validation_error"), BadRequestError, id="400"),
    pytest.param(fail(402, "insufficient_credits"), InsufficientCreditsError, id="402"),
    pytest.param(fail(422, "idempotency_conflict"), IdempotencyError, id="422 conflict"),
])
async def test_a_refused_create_is_not_retried(failure: Answer, cls: type[APIError]) -> None:
    script = Script(failure, ok(RUN, 201))
    async with flora(script) as client:
        with pytest.raises(cls):
            await create(client)
    assert len(script.requests) == 1


UNKEYED_POST = [
    pytest.param(raises(httpx.ReadError), 1, id="reset: may have acted, not resent"),
    pytest.param(raises(httpx.ReadTimeout), 1, id="timeout: may have acted, not resent"),
    pytest.param(fail(503, "unavailable"), 1, id="503: may have acted, not resent"),
    pytest.param(html(200), 1, id="unreadable 200: acted, not resent"),
    pytest.param(raises(httpx.ConnectError), 2, id="connect error: never left, resent"),
    pytest.param(fail(429, "rate_limited", headers={"Retry-After": "0"}), 2, id="429: refused unread, resent"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("failure", "requests"), UNKEYED_POST)
async def test_a_post_without_a_key_is_resent_only_when_flora_cannot_have_acted(failure: Answer,
                                                                                requests: int) -> None:
    script = Script(failure, ok(RUN, 201))
    async with flora(script) as client:
        try:
            await client._request("POST", "techniques/cctv-cam/runs", endpoint="POST /techniques/{id}/runs",
                                  json={"inputs": []})
        except APIError:
            assert requests == 1
    assert len(script.requests) == requests
    assert all("Idempotency-Key" not in r.headers for r in script.requests)


# Pagination -------------------------------------------------------------------------------------------------------

def paged_catalog(size: int, *, cursor_at_top: bool = False) -> Script:
    """`GET /techniques` over `size` summary items, `limit` per page, the offset as cursor."""
    items = [{"technique_id": f"tech_{n}", "slug": f"t-{n}", "name": f"T {n}"} for n in range(size)]

    def answer(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["limit"])
        start = int(request.url.params.get("cursor", "0"))
        following = str(start + limit) if start + limit < size else None
        body: dict[str, Any] = {"techniques": items[start:start + limit]}
        meta = {"next_cursor": following} if cursor_at_top else {"meta": {"limit": limit, "next_cursor": following}}
        body.update(meta)
        return httpx.Response(200, json=body)

    return Script(answer)


@pytest.mark.anyio
@pytest.mark.parametrize(("size", "limit", "pages"), [
    pytest.param(7, 3, 3, id="7 in pages of 3"),
    pytest.param(6, 3, 2, id="exactly two pages"),
    pytest.param(2, 3, 1, id="one short page"),
    pytest.param(0, 3, 1, id="empty"),
])
@pytest.mark.parametrize("cursor_at_top", [False, True], ids=["meta.next_cursor", "top-level next_cursor"])
async def test_the_list_follows_the_cursor_to_the_end(size: int, limit: int, pages: int,
                                                      cursor_at_top: bool) -> None:
    script = paged_catalog(size, cursor_at_top=cursor_at_top)
    async with flora(script) as client:
        techniques = await client.list_techniques(limit=limit, query="cam")
    assert [t.technique_id for t in techniques] == [f"tech_{n}" for n in range(size)]
    assert len(script.requests) == pages
    assert [r.url.params.get("cursor") for r in script.requests] == [None, *[str(limit * p) for p in range(1, pages)]]
    assert all(r.url.params["limit"] == str(limit) and r.url.params["query"] == "cam" for r in script.requests)


@pytest.mark.anyio
async def test_a_repeating_cursor_ends_the_list() -> None:
    page = {"techniques": [{"technique_id": "tech_1", "slug": "t-1"}], "meta": {"next_cursor": "again"}}
    script = Script(ok(page))
    async with flora(script) as client:
        techniques = await client.list_techniques(limit=1)
    assert len(script.requests) == 2 and len(techniques) == 2


@pytest.mark.anyio
async def test_recent_runs_come_with_the_next_cursor() -> None:
    script = Script(ok({"technique_runs": [RUN], "meta": {"next_cursor": "c2"}}))
    async with flora(script) as client:
        runs, cursor = await client.list_technique_runs(technique_id="tech_cctv", status="failed", limit=5)
    assert [r.run_id for r in runs] == ["run_1"] and cursor == "c2"
    assert dict(script.requests[0].url.params) == {"limit": "5", "technique_id": "tech_cctv", "status": "failed"}


# Headers and the key ----------------------------------------------------------------------------------------------

async def every_endpoint(client: FloraClient) -> None:
    await client.list_techniques()
    await client.get_technique("cctv-cam")
    await create(client)
    await client.get_run("run_1", poll_url=f"{BASE}/techniques/cctv-cam/runs/run_1")
    await client.get_run("run_1", technique_ref="cctv-cam")
    await client.list_technique_runs()


def any_answer(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path.endswith("/techniques"):
        return httpx.Response(200, json={"techniques": [TECHNIQUE.model_dump()], "meta": {"next_cursor": None}})
    if path.endswith("/technique-runs"):
        return httpx.Response(200, json={"technique_runs": [RUN]})
    if "/runs" in path:
        return httpx.Response(201 if request.method == "POST" else 200, json=RUN)
    return httpx.Response(200, json=TECHNIQUE.model_dump())


@pytest.mark.anyio
async def test_every_request_says_who_is_asking_and_sends_the_key_only_as_authorization() -> None:
    script = Script(any_answer)
    async with flora(script) as client:
        await every_endpoint(client)
    assert len(script.requests) == 6
    for request in script.requests:
        assert request.headers["User-Agent"] == f"flora-mcp/{__version__}"
        assert request.headers["Accept"] == "application/json"
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        others = [value for name, value in request.headers.items() if name.lower() != "authorization"]
        assert not any(KEY in value for value in others)
        assert KEY not in str(request.url) and KEY.encode() not in request.content


@pytest.mark.anyio
async def test_a_poll_url_on_another_host_is_not_sent_the_key() -> None:
    script = Script(ok(RUN))
    async with flora(script) as client:
        await client.get_run("run_1", technique_ref="cctv-cam", poll_url="https://elsewhere.test/runs/run_1")
    assert [str(r.url) for r in script.requests] == [f"{BASE}/techniques/cctv-cam/runs/run_1"]


SECRET_FAILURES = [
    pytest.param(fail(401, "invalid_api_key", f"Invalid API key {KEY}"), id="a 401 that echoes the key"),
    pytest.param(fail(400, "input_validation_error", f"bad header Bearer {KEY}",
                      fields=[{"field": KEY, "message": f"key {KEY} is not allowed"}]), id="fields that echo it"),
    pytest.param(fail(403, "forbidden", "sk_live_another0key0of0the0user"), id="any key-shaped text"),
    pytest.param(fail(502), id="html 502"),
    pytest.param(html(200), id="unreadable 200"),
    pytest.param(raises(httpx.ReadError, f"reset while sending to {BASE}"), id="reset"),
    pytest.param(raises(httpx.ConnectError, "connection refused"), id="refused"),
    pytest.param(raises(httpx.ReadTimeout), id="timeout"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("failure", SECRET_FAILURES)
async def test_the_key_is_in_no_error_message_repr_or_log(failure: Answer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    script = Script(failure)
    client = flora(script, max_retries=1)
    async with client:
        with pytest.raises(APIError) as raised:
            await create(client)
    error = raised.value
    shown = [str(error), repr(error), error.message, repr(vars(error)), repr(client), repr(vars(client)), caplog.text]
    assert not [text for text in shown if KEY in text or "sk_live_another" in text]


@pytest.mark.parametrize("base", ["https://app.flora.ai/api/v1", "https://app.flora.ai/api/v1/", "http://127.0.0.1:8123",
                                  "https://EXAMPLE.com:8443/a b/v1"])
@pytest.mark.parametrize("path", ["techniques", "/techniques", "techniques/caf%C3%A9-cam", "runs/run_1?x=1",
                                  "techniques/%2Fslash", "https://files.flora.ai/o/1.png", "a b/ü"])
def test_a_path_is_sent_where_httpx_would_have_merged_it(base: str, path: str) -> None:
    client = FloraClient(api_key=KEY, base_url=base)
    merged = client._http.build_request("GET", path, params={"limit": 100}).url
    assert client._http.build_request("GET", client.target(path), params={"limit": 100}).url == merged


@pytest.mark.parametrize("url", [
    f"{BASE}/runs/run_1", f"{BASE}/files/o.png?sig=1#x", "/files/o.png", "files/o.png", "https://flora.test/other",
    "https://elsewhere.test/api/v1/runs/run_1", "https://flora.test.evil/api/v1/x", "https://flora.test@evil.test/x",
    "http://flora.test/api/v1/x", "https://FLORA.test/api/v1/x", f"{BASE}x/y", "//elsewhere.test/x",
])
def test_output_and_poll_urls_are_made_absolute_and_judged_as_urljoin_and_urlsplit_would(url: str) -> None:
    from urllib.parse import urljoin, urlsplit

    client = FloraClient(api_key=KEY, base_url=BASE)
    assert client.absolute(url) == urljoin(BASE + "/", url)
    theirs, ours = urlsplit(client.absolute(url)), urlsplit(BASE)
    assert client._same_origin(client.absolute(url)) == ((theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc))
