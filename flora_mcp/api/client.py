"""FloraClient: every FLORA endpoint flora-mcp uses, over one httpx.AsyncClient per API key."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import anyio
import httpx
from pydantic import BaseModel, ValidationError

from flora_mcp._version import __version__
from flora_mcp.api._keepalive import KeepAliveRequests, usable_for
from flora_mcp.api.errors import APIError, APIResponseError, error_from_response, map_transport_errors
from flora_mcp.api.models import Run, Technique, Workspace
from flora_mcp.api.retry import RetryPolicy
from flora_mcp.logs import add_secret

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "LIST_PAGE_SIZE",
    "MAX_LIST_PAGES",
    "MIN_POLL_INTERVAL",
    "SCHEMA_FETCH_CONCURRENCY",
    "FloraClient",
]

log = logging.getLogger("flora_mcp.api")

M = TypeVar("M", bound=BaseModel)
Send = Callable[[], Awaitable[httpx.Response]]
"""One attempt of a request: called again, from scratch, for every retry."""

DEFAULT_TIMEOUT = 30.0
"""Seconds for one HTTP request to FLORA (each retry gets its own)."""
CONNECT_TIMEOUT = 10.0
"""Seconds to open a connection, when the request timeout is longer."""
MIN_POLL_INTERVAL = 2.0
"""Shortest seconds between two polls of a run: FLORA's guide asks for a poll every 2-5 seconds."""
SCHEMA_FETCH_CONCURRENCY = 64
"""Technique schemas (`GET /techniques/{id}`) a catalog load asks FLORA for at once: at 32, a 1,000-technique
catalog's 500 schemas took 450 ms more than its 11 list pages at 30 ms a round trip; at 64 they keep up with the
pages, and start-up is bound by the pages' round trips again."""
MAX_LIST_PAGES = 10_000
LIST_PAGE_SIZE = 100


class FloraClient:
    """The FLORA REST API, with retries, error translation and typed answers.

    Args:
        api_key: the FLORA key, sent only in the Authorization header.
        base_url: e.g. `https://app.flora.ai/api/v1`.
        timeout: seconds for one HTTP request.
        retry: the retry policy.
        transport: an httpx transport (tests, or a shared connection pool).
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._origin = _origin(self.base_url)
        self.retry = retry or RetryPolicy()
        add_secret(api_key)  # and with it the redaction of every log record, for library users too
        self.timeout = timeout
        self.transport = transport
        """The transport FLORA is reached over; uploads to a storage bucket use it too (tests swap the network)."""
        # httpx's Headers hide the Authorization value in their repr, as the client that is made of them does.
        self._headers = httpx.Headers({
            "Authorization": f"Bearer {api_key}",
            "User-Agent": f"flora-mcp/{__version__}",
            "Accept": "application/json",
        })
        self._pool: httpx.AsyncClient | None = None
        self._closed = False
        # The catalog's schema requests (hundreds at start-up), the polls and the creates of runs, over connections
        # of their own (see _keepalive.py).
        self._kept = KeepAliveRequests(timeout=timeout, connect_timeout=min(timeout, CONNECT_TIMEOUT)) if (
            transport is None and usable_for(self.base_url)) else None

    async def __aenter__(self) -> FloraClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def _http(self) -> httpx.AsyncClient:
        # Made at the first request: its TLS context (loading the CA bundle: 40-50 ms of CPU) and httpcore's import
        # are no part of a start-up whose catalog comes from elsewhere (a cache, core/catalog_process.py).
        if self._pool is None:
            if self._closed:
                raise RuntimeError("the FLORA client is closed")
            self._pool = httpx.AsyncClient(
                base_url=self.base_url + "/",
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, CONNECT_TIMEOUT)),
                headers=self._headers,
                transport=self.transport,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            )
        return self._pool

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        self._closed = True
        if self._pool is not None:
            await self._pool.aclose()
        if self._kept is not None:
            await self._kept.aclose()

    # Techniques -------------------------------------------------------------------------------------------------

    async def list_techniques_page(
        self, *, cursor: str | None = None, limit: int = LIST_PAGE_SIZE, query: str | None = None
    ) -> tuple[list[Technique], str | None]:
        """One page of the technique list and the cursor of the next page (None at the end)."""
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if query:
            params["query"] = query
        body, rid = await self._request("GET", "techniques", endpoint="GET /techniques", params=params)
        items = _list_field(body, "techniques", endpoint="GET /techniques", request_id=rid)
        return _parse_items(Technique, items, endpoint="GET /techniques", request_id=rid), _next_cursor(body)

    async def list_techniques(self, *, query: str | None = None, limit: int = LIST_PAGE_SIZE,
                              on_page: Callable[[list[Technique]], None] | None = None) -> list[Technique]:
        """Every technique, following the cursor to the end (never round a repeating cursor); `on_page` is told
        each page's techniques as it comes."""
        techniques: list[Technique] = []
        seen: set[str] = set()
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page, cursor = await self.list_techniques_page(cursor=cursor, limit=limit, query=query)
            techniques.extend(page)
            if on_page is not None:
                on_page(page)
            if not cursor:
                return techniques
            if cursor in seen:
                log.warning("GET /techniques repeated cursor %r; stopping after %d techniques", cursor, len(techniques))
                return techniques
            seen.add(cursor)
        return techniques

    async def get_technique(self, ref: str) -> Technique:
        """One technique with its full schema, by slug or technique id."""
        body, rid = await self._request("GET", f"techniques/{_seg(ref)}", endpoint="GET /techniques/{id}",
                                        kept_alive=True)
        return _parse(Technique, body, endpoint="GET /techniques/{id}", request_id=rid)

    # Runs -------------------------------------------------------------------------------------------------------

    async def create_run(
        self,
        technique: Technique,
        inputs: Mapping[str, str],
        *,
        idempotency_key: str,
        workspace_id: str | None = None,
        callback_url: str | None = None,
    ) -> Run:
        """Start a run. The same `idempotency_key` is sent on every attempt, as header and as body field; with
        `callback_url`, FLORA announces the run's end there (a signed webhook, `flora_mcp.api.webhooks`).

        Raises:
            IdempotencyError: FLORA already has a run for this key (perhaps from an earlier attempt of this call).
        """
        types = {io.id: io.type for io in technique.inputs or []}
        if workspace_id:
            endpoint = "POST /runs/technique"
            path = "runs/technique"
            payload: dict[str, Any] = {
                "technique_id": technique.technique_id,
                "workspace_id": workspace_id,
                "inputs": dict(inputs),
                "idempotency_key": idempotency_key,
            }
        else:
            endpoint = "POST /techniques/{id}/runs"
            path = f"techniques/{_seg(technique.ref)}/runs"
            payload = {
                "inputs": [{"id": k, "type": types.get(k, "text"), "value": v} for k, v in inputs.items()],
                "mode": "async",
                "idempotency_key": idempotency_key,
            }
        if callback_url:
            payload["callback_url"] = callback_url
        body, rid = await self._request("POST", path, endpoint=endpoint, json=payload,
                                        idempotency_key=idempotency_key, kept_alive=True)
        return self._absolute_urls(_parse(Run, body, endpoint=endpoint, request_id=rid))

    async def get_run(
        self, run_id: str, *, technique_ref: str | None = None, poll_url: str | None = None
    ) -> Run:
        """The run's current state: from `poll_url` when it is on FLORA's own host, else the retrieve route."""
        poll_url = self.absolute(poll_url) if poll_url else None
        if poll_url and self._same_origin(poll_url):
            url, endpoint = poll_url, "GET poll_url"
        elif technique_ref:
            url, endpoint = f"techniques/{_seg(technique_ref)}/runs/{_seg(run_id)}", "GET /techniques/{id}/runs/{run}"
        else:
            url, endpoint = f"runs/{_seg(run_id)}", "GET /runs/{run}"
        body, rid = await self._request("GET", url, endpoint=endpoint, kept_alive=True)
        run = self._absolute_urls(_parse(Run, body, endpoint=endpoint, request_id=rid))
        if run.run_id != run_id:
            raise APIResponseError(f"{endpoint}: asked for run {run_id}, got {run.run_id}", endpoint=endpoint,
                                   request_id=rid)
        return run

    async def list_technique_runs(
        self, *, technique_id: str | None = None, status: str | None = None, limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Run], str | None]:
        """Recent runs, newest first, and the next page's cursor."""
        params: dict[str, Any] = {"limit": limit}
        for key, value in (("technique_id", technique_id), ("status", status), ("cursor", cursor)):
            if value:
                params[key] = value
        endpoint = "GET /technique-runs"
        body, rid = await self._request("GET", "technique-runs", endpoint=endpoint, params=params)
        items = _list_field(body, "technique_runs", endpoint=endpoint, request_id=rid)
        return [_parse(Run, item, endpoint=endpoint, request_id=rid) for item in items], _next_cursor(body)

    # Workspaces -------------------------------------------------------------------------------------------------

    async def list_workspaces(self) -> list[Workspace]:
        """The workspaces this key can use (`GET /workspaces`, not paged)."""
        endpoint = "GET /workspaces"
        body, rid = await self._request("GET", "workspaces", endpoint=endpoint)
        items = _list_field(body, "workspaces", endpoint=endpoint, request_id=rid)
        return _parse_items(Workspace, items, endpoint=endpoint, request_id=rid)

    # Transport --------------------------------------------------------------------------------------------------

    def target(self, url: str) -> str:
        """`url` as httpx would merge it with the base URL (its path appended to the base's), done as one string:
        httpx parses a relative URL, the base and the merged one (about 50 us a request, a tenth of a catalog's
        start-up CPU), an absolute one once."""
        return url if url.startswith(("http://", "https://")) else f"{self.base_url}/{url.lstrip('/')}"

    def absolute(self, url: str) -> str:
        """A URL FLORA gave, made absolute against the base URL (a path like `/files/x.png` stays on FLORA's host)."""
        if url.startswith(self.base_url + "/"):  # already absolute, under the base: every poll and output of a run
            return url
        return urljoin(self.base_url + "/", url)

    def _absolute_urls(self, run: Run) -> Run:
        for output in run.outputs:
            output.url = self.absolute(output.url)
        if run.poll_url:
            run.poll_url = self.absolute(run.poll_url)
        return run

    def _same_origin(self, url: str) -> bool:
        # The key goes only to FLORA's own host: a poll_url elsewhere is not followed.
        return url.startswith(self.base_url + "/") or _origin(url) == self._origin

    async def _request(
        self,
        method: str,
        url: str,
        *,
        endpoint: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        content: Callable[[], AsyncIterable[bytes]] | None = None,
        headers: Mapping[str, str] | None = None,
        kept_alive: bool = False,
    ) -> tuple[Any, str | None]:
        """The decoded JSON body and the request-id of one logical request to FLORA, retried under the policy.

        Args:
            content: makes a fresh request body (an upload) for each attempt; `headers` then name its type and length.
            kept_alive: sent over `KeepAliveRequests` (when this client has them), if a GET or a keyed POST without
                an upload's body: the same request, for less CPU.
        """
        sent = {**(headers or {}), **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}
        keyed_post = method == "POST" and idempotency_key is not None
        kept = self._kept if kept_alive and content is None and (method == "GET" or keyed_post) else None
        url = self.target(url)

        def send() -> Awaitable[httpx.Response]:
            if kept is not None:
                return kept.send(self._http.build_request(method, url, params=params, json=json, headers=sent or None))
            return self._http.request(method, url, params=params, json=json, headers=sent or None,
                                      content=content() if content is not None else None)

        return await self.send_retrying(send, endpoint=endpoint,
                                        idempotent=method == "GET" or idempotency_key is not None)

    async def send_retrying(
        self, send: Send, *, endpoint: str, idempotent: bool, expect_json: bool = True
    ) -> tuple[Any, str | None]:
        """Send one logical request (`send` is one attempt) under the retry policy, translating every failure.

        Args:
            send: makes one attempt; also used for hosts other than FLORA (a storage bucket), on another client.
            endpoint: names the request in errors and logs.
            idempotent: whether sending it twice does no harm (a read, a keyed POST, an upload to one object).
            expect_json: False for answers whose body does not matter (a bucket's empty 204).

        Returns:
            The decoded JSON body (None when not expected) and the request-id.
        """
        attempt = 0
        unknown_before = False
        while True:
            try:
                return await self._attempt(send, endpoint=endpoint, expect_json=expect_json)
            except APIError as exc:
                exc.unknown_before = unknown_before
                unknown_before = unknown_before or exc.outcome_unknown
                if not self.retry.should_retry(exc, attempt=attempt, idempotent=idempotent):
                    raise
                wait = self.retry.delay(exc, attempt=attempt)
                self.retry.log_retry(exc, attempt=attempt, wait=wait)
                await anyio.sleep(wait)
                attempt += 1

    async def _attempt(self, send: Send, *, endpoint: str, expect_json: bool) -> tuple[Any, str | None]:
        with map_transport_errors(endpoint):
            response = await send()
        request_id = response.headers.get("request-id") or response.headers.get("x-request-id")
        if response.status_code >= 400 or response.status_code < 200:
            retry_after = self.retry.parse_retry_after(response.headers)
            raise error_from_response(response, endpoint=endpoint, retry_after=retry_after)
        if response.status_code >= 300:
            raise APIResponseError(f"{endpoint}: unexpected redirect (HTTP {response.status_code})",
                                   endpoint=endpoint, request_id=request_id)
        if not expect_json:
            return None, request_id
        try:
            return response.json(), request_id
        except ValueError:
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            raise APIResponseError(
                f"{endpoint}: the answer is not JSON "
                f"(HTTP {response.status_code}, {kind}, {len(response.content)} bytes)",
                endpoint=endpoint, request_id=request_id,
            ) from None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _seg(value: str) -> str:
    return quote(value, safe="")


# Some servers wrap the object: {"technique": {...}}, {"run": {...}}, {"data": {...}}.
_WRAPPERS = ("data", "technique", "run")


def _parse(model: type[M], body: Any, *, endpoint: str, request_id: str | None = None) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        if isinstance(body, dict) and len(body) <= 2:
            for key in _WRAPPERS:
                if isinstance(body.get(key), dict):
                    try:
                        return model.model_validate(body[key])
                    except ValidationError:
                        break
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()[:3]
        )
        rid = f", request-id {request_id}" if request_id else ""
        raise APIResponseError(f"{endpoint}: unexpected answer ({problems}{rid})", endpoint=endpoint,
                               request_id=request_id) from None


def _parse_items(model: type[M], items: Sequence[Any], *, endpoint: str, request_id: str | None) -> list[M]:
    """Every item that parses; one odd item is skipped with a warning, a page of nothing but odd items is an error."""
    parsed: list[M] = []
    first_error: APIResponseError | None = None
    for item in items:
        try:
            parsed.append(_parse(model, item, endpoint=endpoint, request_id=request_id))
        except APIResponseError as exc:
            first_error = first_error or exc
            log.warning("skipping an item of %s: %s", endpoint, exc.message)
    if first_error is not None and not parsed:
        raise first_error
    return parsed


def _list_field(body: Any, key: str, *, endpoint: str, request_id: str | None = None) -> Sequence[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for name in (key, "data", "items"):
            value = body.get(name)
            if isinstance(value, list):
                return value
    raise APIResponseError(f"{endpoint}: the answer has no '{key}' list", endpoint=endpoint, request_id=request_id)


def _next_cursor(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    meta = body.get("meta")
    for source in (meta if isinstance(meta, dict) else {}, body):
        for name in ("next_cursor", "nextCursor"):
            value = source.get(name)
            if isinstance(value, str) and value:
                return value
    return None
