"""`Assets` on `httpx.MockTransport`: what each upload sends where (and what it never sends to the bucket), one
idempotency key per logical call, lost answers, the guard on upload targets, renewals, waits, streaming from disk."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from flora_mcp._fetch_guard import FetchPolicy
from flora_mcp.api._upload_body import CHUNK
from flora_mcp.api.assets import MAX_SIGNED_ROUNDS, Assets
from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import PermissionDeniedError, UnsafeURLError, UploadError
from tests.api.test_client import KEY, RID, Answer, RecordingPolicy, Script, fail, ok, raises
from tests.media_support import MB, mp4_bytes, png_bytes, write

pytestmark = pytest.mark.anyio

BASE = "https://flora.test/api/v1"
BUCKET_IP = "93.184.216.34"
PNG = png_bytes()
READY = {"asset_id": "ast_1", "status": "ready", "url": "https://cdn.flora.test/a.png", "uploaded_via": "direct"}
TARGET = {"url": "https://bucket.test/upload", "method": "POST", "content_type": "multipart/form-data",
          "file_field": "file", "form_fields": {"key": "uploads/ast_2/t1", "policy": "cG9saWN5", "x-sig": "abc"}}
RESERVED = {"asset_id": "ast_2", "status": "pending_upload", "url": None, "uploaded_via": "signed_url",
            "upload": TARGET, "expires_at": "2030-01-01T00:00:00Z"}
PENDING = {**RESERVED, "upload": None}
SIGNED_READY = {**READY, "asset_id": "ast_2", "uploaded_via": "signed_url"}


async def resolver(host: str, port: int) -> Sequence[str]:
    return {"bucket.test": [BUCKET_IP], "inside.test": ["10.0.0.5"]}[host]


def uploader(script: Script, *, max_retries: int = 3, ready_timeout: float = 5.0) -> tuple[FloraClient, Assets]:
    client = FloraClient(api_key=KEY, base_url=BASE, transport=httpx.MockTransport(script),
                         retry=RecordingPolicy(max_retries=max_retries))
    policy = FetchPolicy(resolver=resolver)
    return client, Assets(client, policy=policy, poll_interval=0.001, ready_timeout=ready_timeout)


def parts(request: httpx.Request) -> list[tuple[str, str | None, bytes]]:
    """A multipart body's parts in order: (name, filename or None, bytes)."""
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    found = []
    for chunk in request.content.split(b"--" + boundary)[1:-1]:
        head, _, data = chunk[2:].partition(b"\r\n\r\n")
        disposition = head.split(b"\r\n")[0].decode()
        name = disposition.split('name="')[1].split('"')[0]
        filename = disposition.split('filename="')[1].split('"')[0] if "filename=" in disposition else None
        found.append((name, filename, data[:-2]))
    return found


def to_bucket(request: httpx.Request) -> bool:
    return request.url.host == BUCKET_IP


def route(*, bucket: Answer, complete: Answer | None = None, retry: Answer | None = None) -> Answer:
    """One answer per kind of request, for scripts whose length depends on how often the client tries."""
    def answer(request: httpx.Request) -> httpx.Response:
        if to_bucket(request):
            return bucket(request)
        path = request.url.path
        chosen = complete if path.endswith("/complete") else retry if path.endswith("/retry") else ok(RESERVED)
        assert chosen is not None, path
        return chosen(request)

    return answer


async def test_a_small_file_is_one_multipart_post_with_the_key_and_an_idempotency_key(tmp_path: Path) -> None:
    script = Script(ok(READY))
    client, assets = uploader(script)
    async with client:
        asset = await assets.upload_file(write(tmp_path / "red dot.png", PNG), workspace_id="ws_1")
    assert asset.url == READY["url"]
    [request] = script.requests
    assert (request.method, str(request.url)) == ("POST", f"{BASE}/assets")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["idempotency-key"].startswith("flora-mcp-asset-")
    assert int(request.headers["content-length"]) == len(request.content)
    assert parts(request) == [("workspace_id", None, b"ws_1"), ("content_type", None, b"image/png"),
                              ("file_name", None, b"red dot.png"), ("file", "red dot.png", PNG)]


async def test_a_large_file_is_reserved_sent_to_the_bucket_without_the_key_then_completed() -> None:
    video = mp4_bytes(5 * MB)
    script = Script(ok(RESERVED), lambda r: httpx.Response(204), ok(PENDING), ok(PENDING), ok(SIGNED_READY))
    client, assets = uploader(script)
    async with client:
        asset = await assets.upload_file(video, workspace_id="ws_1", file_name="clip.mp4")
    assert asset.asset_id == "ast_2" and asset.is_ready
    reserve, upload, complete, *polls = script.requests
    assert json.loads(reserve.content) == {"source": "signed-url", "workspace_id": "ws_1",
                                           "content_type": "video/mp4", "file_name": "clip.mp4"}
    assert to_bucket(upload) and upload.headers["host"] == "bucket.test" and upload.url.path == "/upload"
    assert "authorization" not in upload.headers and "idempotency-key" not in upload.headers
    assert KEY.encode() not in upload.content
    assert parts(upload) == [("key", None, b"uploads/ast_2/t1"), ("policy", None, b"cG9saWN5"),
                             ("x-sig", None, b"abc"), ("file", "clip.mp4", video)]
    assert str(complete.url) == f"{BASE}/assets/ast_2/complete"
    assert complete.headers["idempotency-key"] != reserve.headers["idempotency-key"]
    assert [str(r.url) for r in polls] == [f"{BASE}/assets/ast_2"] * 2


async def test_one_key_per_logical_call_is_reused_on_every_retry() -> None:
    script = Script(fail(503, "unknown_error"), ok(RESERVED), lambda r: httpx.Response(204),
                    fail(502, "unknown_error"), ok(SIGNED_READY))
    client, assets = uploader(script)
    async with client:
        await assets.upload_file(mp4_bytes(5 * MB), workspace_id="ws_1")
    flora_calls = [r for r in script.requests if not to_bucket(r)]
    keys = [r.headers["idempotency-key"] for r in flora_calls]
    assert keys[0] == keys[1] and keys[2] == keys[3] and keys[0] != keys[2]


async def test_a_lost_create_answer_then_duplicate_makes_a_new_asset_with_a_new_key() -> None:
    script = Script(raises(httpx.ReadError), fail(409, "idempotency_duplicate"), ok(READY))
    client, assets = uploader(script)
    async with client:
        asset = await assets.upload_file(PNG, workspace_id="ws_1")
    assert asset.asset_id == "ast_1"
    keys = [r.headers["idempotency-key"] for r in script.requests]
    assert keys[0] == keys[1] != keys[2]


async def test_a_lost_complete_answer_is_recovered_by_reading_the_asset() -> None:
    script = Script(ok(RESERVED), lambda r: httpx.Response(204), raises(httpx.RemoteProtocolError),
                    fail(409, "idempotency_duplicate"), ok(SIGNED_READY))
    client, assets = uploader(script)
    async with client:
        asset = await assets.upload_file(mp4_bytes(5 * MB), workspace_id="ws_1")
    assert asset.is_ready
    assert [r.method for r in script.requests] == ["POST", "POST", "POST", "POST", "GET"]


@pytest.mark.parametrize("url", ["https://inside.test/upload", "https://169.254.169.254/upload",
                                 "http://bucket.test/upload", "https://user:pw@bucket.test/upload"])
async def test_an_upload_target_the_guard_refuses_is_never_contacted_nor_renewed(url: str) -> None:
    script = Script(ok({**RESERVED, "upload": {**TARGET, "url": url}}))
    client, assets = uploader(script)
    async with client:
        with pytest.raises(UnsafeURLError, match="refused to connect"):
            await assets.upload_file(mp4_bytes(5 * MB), workspace_id="ws_1")
    assert len(script.requests) == 1  # the reservation only: no upload, no retry


async def test_a_bucket_refusal_renews_the_target_through_retry_and_reads_the_buckets_words() -> None:
    expired = ('<?xml version="1.0"?><Error><Code>AccessDenied</Code>'
               "<Message>Invalid according to Policy: Policy expired.</Message></Error>")
    renewed = {**RESERVED, "upload": {**TARGET, "form_fields": {"key": "uploads/ast_2/t2"}}}
    script = Script(ok(RESERVED),
                    lambda r: httpx.Response(403, text=expired, headers={"content-type": "application/xml"}),
                    ok(renewed), lambda r: httpx.Response(204), ok(SIGNED_READY))
    client, assets = uploader(script)
    async with client:
        await assets.upload_file(mp4_bytes(5 * MB), workspace_id="ws_1")
    urls = [str(r.url) for r in script.requests]
    assert urls[2] == f"{BASE}/assets/ast_2/retry"
    assert parts(script.requests[3])[0] == ("key", None, b"uploads/ast_2/t2")
    refuse = lambda r: httpx.Response(403, text=expired, headers={"content-type": "application/xml"})  # noqa: E731
    script = Script(route(bucket=refuse, retry=ok(renewed)))
    client, assets = uploader(script)
    async with client:
        with pytest.raises(PermissionDeniedError, match="AccessDenied: Invalid according to Policy: Policy expired"):
            await assets.upload_file(mp4_bytes(5 * MB), workspace_id="ws_1")
    assert sum(to_bucket(r) for r in script.requests) == MAX_SIGNED_ROUNDS


async def test_a_failed_signed_asset_is_retried_then_its_failure_is_named() -> None:
    failed = {**PENDING, "status": "failed", "failure_message": "The file is corrupt."}
    script = Script(ok(RESERVED), lambda r: httpx.Response(204), ok(failed), ok(RESERVED),
                    lambda r: httpx.Response(204), ok(SIGNED_READY))
    client, assets = uploader(script)
    async with client:
        assert (await assets.upload_file(mp4_bytes(5 * MB), workspace_id="ws_1")).is_ready
    assert str(script.requests[3].url) == f"{BASE}/assets/ast_2/retry"
    script = Script(route(bucket=lambda r: httpx.Response(204), complete=ok(failed), retry=ok(RESERVED)))
    client, assets = uploader(script)
    async with client:
        with pytest.raises(UploadError, match="The file is corrupt") as raised:
            await assets.upload_file(mp4_bytes(5 * MB), workspace_id="ws_1")
    assert raised.value.asset_id == "ast_2" and raised.value.failure_message == "The file is corrupt."
    assert sum(to_bucket(r) for r in script.requests) == MAX_SIGNED_ROUNDS


async def test_an_asset_still_pending_after_the_wait_names_its_id() -> None:
    script = Script(ok({**READY, "status": "pending_upload", "url": None}))
    client, assets = uploader(script, ready_timeout=0.05)
    async with client:
        with pytest.raises(UploadError, match="still pending_upload") as raised:
            await assets.upload_file(PNG, workspace_id="ws_1")
    assert raised.value.asset_id == "ast_1"


@pytest.mark.parametrize("data", [b"plain text\n" * 50, b"<html><body>hi</body></html>", b"", b"\x00" * 100])
async def test_bytes_that_are_not_media_are_refused_with_zero_requests(data: bytes) -> None:
    script = Script(ok(READY))
    client, assets = uploader(script)
    async with client:
        with pytest.raises(UploadError, match="not a media type FLORA accepts"):
            await assets.upload_file(data, workspace_id="ws_1", file_name="photo.png")
    assert script.requests == []


class Draining(httpx.AsyncBaseTransport):
    """Reads each request body chunk by chunk and keeps none of it, as a socket would; answers in order."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.largest_chunk = 0
        self.received: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        size = 0
        async for chunk in request.stream:  # type: ignore[union-attr]
            self.largest_chunk = max(self.largest_chunk, len(chunk))
            size += len(chunk)
        self.received.append(size)
        status, body = self.answers.pop(0)
        return httpx.Response(status, json=body, headers={"request-id": RID}) if body else httpx.Response(status)


async def test_a_large_file_streams_from_disk_and_is_never_held_in_memory(tmp_path: Path) -> None:
    video = write(tmp_path / "long.mp4", mp4_bytes(24 * MB))
    transport = Draining((200, RESERVED), (204, None), (200, SIGNED_READY))
    client = FloraClient(api_key=KEY, base_url=BASE, transport=transport, retry=RecordingPolicy())
    assets = Assets(client, policy=FetchPolicy(resolver=resolver), poll_interval=0.001)
    async with client:
        tracemalloc.start()
        try:
            await assets.upload_file(video, workspace_id="ws_1")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert transport.received[1] > 24 * MB
    assert transport.largest_chunk <= CHUNK + 1024
    assert peak < 4 * MB  # a few chunks in flight, not the 24 MB file


async def test_list_workspaces_reads_the_documented_shape() -> None:
    script = Script(ok({"workspaces": [{"workspace_id": "ws_a", "name": "Studio", "role": "owner", "created_at": 1},
                                       {"workspaceId": "ws_b", "name": "Team"}]}))
    async with FloraClient(api_key=KEY, base_url=BASE, transport=httpx.MockTransport(script)) as client:
        workspaces = await client.list_workspaces()
    assert [(w.workspace_id, w.name, w.role) for w in workspaces] == [("ws_a", "Studio", "owner"),
                                                                       ("ws_b", "Team", None)]
    assert str(script.requests[0].url) == f"{BASE}/workspaces"
