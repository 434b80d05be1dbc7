"""Assets in the sandbox: the three ways in, the signed bucket, status moves, content and size rules, expiry,
idempotency, listing, faults on every step, and asset URLs as technique inputs."""

from __future__ import annotations

import base64
import json
from typing import Any

import anyio
import httpx
import pytest
from sandbox_support import Api, client_for, loopback_client

from flora_mcp._media import DIRECT_UPLOAD_MAX_BYTES
from flora_mcp.sandbox import Account, Sandbox, SandboxConfig, serve_sandbox
from tests.media_support import MB, jpeg_bytes, mp4_bytes, png_bytes

pytestmark = pytest.mark.anyio

WS = "ws_sandbox"
PNG = png_bytes()


async def direct(client: httpx.AsyncClient, data: bytes, *, name: str = "photo.png", content_type: str = "image/png",
                 headers: dict[str, str] | None = None, **fields: str) -> httpx.Response:
    form = {"workspace_id": WS, **fields}
    return await client.post("/assets", data=form, files={"file": (name, data, content_type)}, headers=headers)


async def reserve(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/assets", json={"source": "signed-url", "workspace_id": WS, **body})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def post_to_bucket(target: dict[str, Any], data: bytes, *, headers: dict[str, str] | None = None,
                         fields: dict[str, str] | None = None) -> httpx.Response:
    """What a client does with a presigned POST: every form field, then the file part; no FLORA key."""
    async with loopback_client(timeout=10) as bucket:
        form = fields if fields is not None else target["form_fields"]
        files = {target["file_field"]: ("upload.bin", data, "application/octet-stream")}
        return await bucket.post(target["url"], data=form, files=files, headers=headers)


async def wait_for(client: httpx.AsyncClient, asset_id: str, status: str = "ready") -> dict[str, Any]:
    with anyio.fail_after(10):
        while True:
            asset: dict[str, Any] = (await client.get(f"/assets/{asset_id}")).json()
            if asset["status"] != "pending_upload":
                assert asset["status"] == status, asset
                return asset
            await anyio.sleep(0.01)


async def signed_upload(client: httpx.AsyncClient, data: bytes, **body: Any) -> dict[str, Any]:
    reservation = await reserve(client, **body)
    assert (await post_to_bucket(reservation["upload"], data)).status_code == 204
    done = await client.post(f"/assets/{reservation['asset_id']}/complete")
    assert done.status_code == 200, done.text
    return await wait_for(client, reservation["asset_id"])


# Direct multipart -------------------------------------------------------------------------------------------------


async def test_a_direct_upload_is_ready_at_once_judged_by_its_content(shared_api: Api) -> None:
    photo = jpeg_bytes(3 * MB)
    response = await direct(shared_api.client, photo, name="holiday photo.jpg", content_type="image/png")
    assert response.status_code == 200, response.text
    asset = response.json()
    assert asset["asset_id"].startswith("ast_")
    assert asset["status"] == "ready"
    assert asset["uploaded_via"] == "direct"
    assert asset["workspace_id"] == WS and asset["visibility"] == "workspace"
    assert asset["content_type"] == "image/jpeg"  # the bytes say JPEG, whatever the client declared
    assert asset["upload_content_type"] is None or asset["upload_content_type"] == "image/png"
    assert (asset["width"], asset["height"], asset["size_bytes"]) == (640, 480, len(photo))
    assert asset["name"] == "holiday photo.jpg"
    assert asset["url"].startswith(f"{shared_api.box.origin}/files/assets/{asset['asset_id']}/")
    served = await shared_api.client.get(asset["url"])
    assert served.content == photo
    assert served.headers["content-type"] == "image/jpeg"
    assert shared_api.box.asset_file(asset["asset_id"]).read_bytes() == photo  # type: ignore[union-attr]


async def test_a_direct_upload_over_4_mb_is_refused_with_the_way_to_do_it(box: Sandbox, api: Api) -> None:
    response = await direct(api.client, jpeg_bytes(DIRECT_UPLOAD_MAX_BYTES + 1), name="big.jpg")
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "input_validation_error"
    assert error["fields"][0]["field"] == "file" and "signed-url" in error["fields"][0]["message"]
    assert box.assets == []
    assert (await direct(api.client, jpeg_bytes(DIRECT_UPLOAD_MAX_BYTES), name="edge.jpg")).status_code == 200


@pytest.mark.parametrize(("data", "why"), [
    pytest.param(b"just some text, not an image at all\n" * 10, "not a media type", id="text-named-png"),
    pytest.param(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not a media type", id="svg"),
    pytest.param(b"PK\x03\x04" + b"\0" * 60, "not a media type", id="zip"),
    pytest.param(b"", "empty", id="empty"),
])
async def test_a_direct_upload_that_is_not_allowed_media_is_refused(box: Sandbox, api: Api, data: bytes,
                                                                     why: str) -> None:
    response = await direct(api.client, data, name="picture.png")
    assert response.status_code == 422
    [field] = response.json()["error"]["fields"]
    assert field["field"] == "file" and why in field["message"]
    assert box.assets == []


async def test_workspace_is_required_and_must_be_the_keys() -> None:
    keys = {"sk_a": Account(other_workspaces={"ws_team": "Team"})}
    async with serve_sandbox(SandboxConfig(keys=keys)) as box, client_for(box) as client:
        missing = await client.post("/assets", files={"file": ("a.png", PNG, "image/png")})
        assert missing.status_code == 422
        assert missing.json()["error"]["fields"][0]["field"] == "workspace_id"
        other = await direct(client, PNG, workspace_id="ws_elsewhere")
        assert other.status_code == 403
        team = await direct(client, PNG, workspace_id="ws_team")
        assert team.status_code == 200 and team.json()["workspace_id"] == "ws_team"
        listed = (await client.get("/workspaces")).json()["workspaces"]
        assert [(w["workspace_id"], w["name"]) for w in listed] == [("ws_sandbox", "Sandbox Workspace"),
                                                                     ("ws_team", "Team")]


# Signed uploads ---------------------------------------------------------------------------------------------------


async def test_a_signed_upload_goes_reserve_bucket_complete_then_ready(box: Sandbox, api: Api) -> None:
    video = mp4_bytes(8 * MB)
    reservation = await reserve(api.client, file_name="clip.mp4", content_type="video/mp4")
    assert reservation["status"] == "pending_upload" and reservation["url"] is None
    assert reservation["uploaded_via"] == "signed_url"
    assert reservation["expires_at"].endswith("Z")
    target = reservation["upload"]
    assert target["url"] == f"{box.origin}/bucket"
    assert (target["method"], target["content_type"], target["file_field"]) == ("POST", "multipart/form-data", "file")
    assert target["form_fields"]["Content-Type"] == "video/mp4"
    assert (await post_to_bucket(target, video)).status_code == 204
    [upload] = box.requests_for("bucket_upload")
    assert upload.api_key is None
    assert isinstance(upload.body, str) and upload.body.endswith(" bytes of multipart/form-data>")  # no bytes logged
    assert int(upload.body[1:].split(" ")[0]) > len(video)
    assert (await api.client.get(f"/assets/{reservation['asset_id']}")).json()["status"] == "pending_upload"
    done = await api.client.post(f"/assets/{reservation['asset_id']}/complete")
    assert done.status_code == 200
    asset = await wait_for(api.client, reservation["asset_id"])
    assert (asset["content_type"], asset["size_bytes"], asset["name"]) == ("video/mp4", len(video), "clip.mp4")
    assert asset["url"].endswith("/clip.mp4")
    assert (await api.client.get(asset["url"])).content == video
    again = await api.client.post(f"/assets/{reservation['asset_id']}/complete")
    assert again.status_code == 200 and again.json()["status"] == "ready"


async def test_the_bucket_refuses_a_flora_key_and_keeps_nothing(box: Sandbox, api: Api) -> None:
    reservation = await reserve(api.client)
    refused = await post_to_bucket(reservation["upload"], PNG, headers={"Authorization": f"Bearer {box.api_key}"})
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/xml"
    assert "<Code>InvalidArgument</Code>" in refused.text and "no API key" in refused.text
    assert box.state.assets.assets[reservation["asset_id"]].reservation.received is None  # type: ignore[union-attr]
    assert (await api.client.post(f"/assets/{reservation['asset_id']}/complete")).status_code == 400


async def test_the_bucket_refuses_a_tampered_policy_or_key(api: Api) -> None:
    reservation = await reserve(api.client)
    fields = dict(reservation["upload"]["form_fields"])
    policy = json.loads(base64.urlsafe_b64decode(fields["policy"] + "=="))
    policy["content_length_range"] = [1, 10**12]
    forged = {**fields, "policy": base64.urlsafe_b64encode(json.dumps(policy).encode()).decode().rstrip("=")}
    response = await post_to_bucket(reservation["upload"], PNG, fields=forged)
    assert response.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in response.text
    moved = await post_to_bucket(reservation["upload"], PNG, fields={**fields, "key": "uploads/ast_other/x"})
    assert moved.status_code == 403


async def test_completing_before_the_bytes_arrive_is_refused_and_changes_nothing(api: Api) -> None:
    reservation = await reserve(api.client)
    response = await api.client.post(f"/assets/{reservation['asset_id']}/complete")
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["field"] == "asset_id"
    assert (await api.client.get(f"/assets/{reservation['asset_id']}")).json()["status"] == "pending_upload"


async def test_signed_bytes_that_are_not_media_fail_the_asset_with_a_message(api: Api) -> None:
    reservation = await reserve(api.client, file_name="notes.png")
    assert (await post_to_bucket(reservation["upload"], b"hello, plain text")).status_code == 204
    await api.client.post(f"/assets/{reservation['asset_id']}/complete")
    failed = await wait_for(api.client, reservation["asset_id"], "failed")
    assert "not a media type" in failed["failure_message"]
    assert failed["url"] is None


async def test_an_expired_reservation_fails_and_retry_gives_a_fresh_target() -> None:
    async with serve_sandbox(SandboxConfig(asset_reservation_ttl=0.3)) as box, client_for(box) as client:
        reservation = await reserve(client)
        await anyio.sleep(0.35)
        late = await post_to_bucket(reservation["upload"], PNG)
        assert late.status_code == 403 and "Policy expired" in late.text
        failed = (await client.get(f"/assets/{reservation['asset_id']}")).json()
        assert failed["status"] == "failed" and "expired" in failed["failure_message"]
        box.state.config.asset_reservation_ttl = 60
        fresh = await client.post(f"/assets/{reservation['asset_id']}/retry")
        assert fresh.status_code == 200, fresh.text
        renewed = fresh.json()
        assert renewed["asset_id"] == reservation["asset_id"] and renewed["status"] == "pending_upload"
        assert renewed["upload"]["form_fields"]["key"] != reservation["upload"]["form_fields"]["key"]
        stale = await post_to_bucket(reservation["upload"], PNG)
        assert stale.status_code == 403  # the old target no longer works, even had it not expired
        assert (await post_to_bucket(renewed["upload"], PNG)).status_code == 204
        await client.post(f"/assets/{reservation['asset_id']}/complete")
        assert (await wait_for(client, reservation["asset_id"]))["size_bytes"] == len(PNG)


async def test_retry_is_only_for_a_failed_or_expired_signed_upload(api: Api) -> None:
    open_reservation = await reserve(api.client)
    assert (await api.client.post(f"/assets/{open_reservation['asset_id']}/retry")).status_code == 400
    ready = (await direct(api.client, PNG)).json()
    assert (await api.client.post(f"/assets/{ready['asset_id']}/retry")).status_code == 400
    assert (await api.client.post(f"/assets/{ready['asset_id']}/complete")).status_code == 400
    assert (await api.client.post("/assets/ast_missing/retry")).status_code == 404


async def test_a_put_style_target_takes_raw_bytes_with_the_signed_content_type() -> None:
    async with serve_sandbox(SandboxConfig(signed_upload="put")) as box, client_for(box) as client:
        reservation = await reserve(client, content_type="image/png")
        assert "upload" not in reservation
        url = reservation["upload_url"]
        async with loopback_client(timeout=10) as bucket:
            wrong = await bucket.put(url, content=PNG, headers={"Content-Type": "image/jpeg"})
            assert wrong.status_code == 403
            keyed = await bucket.put(url, content=PNG, headers={"Content-Type": "image/png",
                                                                "Authorization": f"Bearer {box.api_key}"})
            assert keyed.status_code == 400
            put = await bucket.put(url, content=PNG, headers={"Content-Type": "image/png"})
            assert put.status_code == 200 and put.headers["etag"]
        await client.post(f"/assets/{reservation['asset_id']}/complete")
        asset = await wait_for(client, reservation["asset_id"])
        assert (await client.get(asset["url"])).content == PNG


async def test_processing_keeps_the_asset_pending_until_it_is_judged() -> None:
    async with serve_sandbox(SandboxConfig(asset_processing_delay=0.2)) as box, client_for(box) as client:
        reservation = await reserve(client)
        await post_to_bucket(reservation["upload"], PNG)
        done = (await client.post(f"/assets/{reservation['asset_id']}/complete")).json()
        assert done["status"] == "pending_upload" and "upload" not in done
        assert (await client.post(f"/assets/{reservation['asset_id']}/retry")).status_code == 400
        assert (await wait_for(client, reservation["asset_id"]))["status"] == "ready"


# Source URLs ------------------------------------------------------------------------------------------------------


async def test_a_source_url_of_the_sandbox_itself_is_fetched(shared_api: Api) -> None:
    url = shared_api.box.sample_url("street.png")
    response = await shared_api.client.post("/assets", json={"source": url, "workspace_id": WS})
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["uploaded_via"] == "url" and created["name"] == "street.png"
    asset = await wait_for(shared_api.client, created["asset_id"])
    assert (asset["width"], asset["height"]) == (640, 480)
    assert (await shared_api.client.get(asset["url"])).content == (await shared_api.client.get(url)).content


async def test_a_source_url_that_is_missing_fails_the_asset(shared_api: Api) -> None:
    url = f"{shared_api.box.origin}/files/samples/nothing.png"
    created = (await shared_api.client.post("/assets", json={"source": url, "workspace_id": WS})).json()
    failed = await wait_for(shared_api.client, created["asset_id"], "failed")
    assert "could not be fetched" in failed["failure_message"]


@pytest.mark.parametrize(("source", "why"), [
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://10.0.0.7/photo.jpg", "private"),
    ("https://127.0.0.1/photo.jpg", "loopback"),
    ("https://localhost/photo.jpg", "loopback"),
    ("https://[::ffff:10.0.0.7]/photo.jpg", "IPv4-mapped"),
    ("http://example.com/photo.jpg", "public https"),
    ("ftp://example.com/photo.jpg", "public https"),
    ("https://example.com/photo.jpg", "does not reach the internet"),
])
async def test_a_source_url_that_flora_would_not_fetch_is_refused(box: Sandbox, api: Api, source: str,
                                                                   why: str) -> None:
    response = await api.client.post("/assets", json={"source": source, "workspace_id": WS})
    assert response.status_code == 422
    [field] = response.json()["error"]["fields"]
    assert field["field"] == "source" and why in field["message"]
    assert box.assets == []


# Retrieve, list, scoping ------------------------------------------------------------------------------------------


async def test_another_keys_asset_is_not_found_and_not_listed() -> None:
    keys = {"sk_a": Account(), "sk_b": Account()}
    async with serve_sandbox(SandboxConfig(keys=keys)) as box:
        async with client_for(box, "sk_a") as a, client_for(box, "sk_b") as b:
            mine = (await direct(a, PNG)).json()
            assert (await b.get(f"/assets/{mine['asset_id']}")).status_code == 404
            assert (await b.post(f"/assets/{mine['asset_id']}/complete")).status_code == 404
            assert (await b.get("/assets")).json()["assets"] == []


async def test_list_pages_newest_first_and_filters(box: Sandbox, api: Api) -> None:
    made = [(await direct(api.client, PNG, name=f"shot-{i}.png")).json()["asset_id"] for i in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = (await api.client.get("/assets", params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
        assert len(page["assets"]) <= 2
        seen += [item["asset_id"] for item in page["assets"]]
        assert all(isinstance(item["created_at"], int) for item in page["assets"])
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    found = (await api.client.get("/assets", params={"query": "SHOT-3"})).json()["assets"]
    assert [item["name"] for item in found] == ["shot-3.png"]
    assert (await api.client.get("/assets", params={"workspace_id": "ws_nope"})).status_code == 403
    assert (await api.client.get("/assets", params={"cursor": "bogus"})).status_code == 400
    retrieved = (await api.client.get(f"/assets/{made[0]}")).json()
    assert isinstance(retrieved["created_at"], str) and retrieved["created_at"].endswith("Z")


# Idempotency ------------------------------------------------------------------------------------------------------


async def test_a_reused_key_is_a_duplicate_with_the_same_request_and_a_conflict_with_another(
    box: Sandbox, api: Api
) -> None:
    key = {"Idempotency-Key": "upload-1"}
    assert (await direct(api.client, PNG, headers=key)).status_code == 200
    duplicate = await direct(api.client, PNG, headers=key)
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "idempotency_duplicate"
    conflict = await direct(api.client, png_bytes(color=(1, 2, 3)), headers=key)
    assert conflict.status_code == 422 and conflict.json()["error"]["code"] == "idempotency_conflict"
    assert len(box.assets) == 1
    body = {"source": "signed-url", "workspace_id": WS}
    first = await api.client.post("/assets", json=body, headers={"Idempotency-Key": "reserve-1"})
    assert (await api.client.post("/assets", json=body, headers={"Idempotency-Key": "reserve-1"})).status_code == 409
    asset_id = first.json()["asset_id"]
    assert (await post_to_bucket(first.json()["upload"], PNG)).status_code == 204
    complete = {"Idempotency-Key": "complete-1"}
    assert (await api.client.post(f"/assets/{asset_id}/complete", headers=complete)).status_code == 200
    assert (await api.client.post(f"/assets/{asset_id}/complete", headers=complete)).status_code == 409
    assert len(box.assets) == 2


async def test_a_refused_request_does_not_use_its_key(box: Sandbox, api: Api) -> None:
    key = {"Idempotency-Key": "upload-2"}
    assert (await direct(api.client, b"not media", headers=key)).status_code == 422
    assert (await direct(api.client, PNG, headers=key)).status_code == 200


# Faults on every step ---------------------------------------------------------------------------------------------


async def test_a_fault_before_any_asset_step_answers_it_and_changes_nothing(box: Sandbox, api: Api) -> None:
    reservation = await reserve(api.client)
    asset_id = reservation["asset_id"]
    steps = [
        ("create_asset", lambda: direct(api.client, PNG)),
        ("bucket_upload", lambda: post_to_bucket(reservation["upload"], PNG)),
        ("complete_asset", lambda: api.client.post(f"/assets/{asset_id}/complete")),
        ("get_asset", lambda: api.client.get(f"/assets/{asset_id}")),
        ("list_assets", lambda: api.client.get("/assets")),
        ("retry_asset", lambda: api.client.post(f"/assets/{asset_id}/retry")),
    ]
    for route, call in steps:
        box.faults.inject(route, "status", status=503)
        response = await call()
        assert response.status_code == 503, route
    assert len(box.assets) == 1
    held = box.state.assets.assets[asset_id]
    assert held.status == "pending_upload" and held.reservation is not None and held.reservation.received is None


async def test_a_bucket_upload_whose_answer_is_lost_was_kept_and_can_be_sent_again(box: Sandbox, api: Api) -> None:
    reservation = await reserve(api.client)
    box.faults.inject("bucket_upload", "drop", when="after")
    with pytest.raises(httpx.RemoteProtocolError):
        await post_to_bucket(reservation["upload"], PNG)
    assert box.state.assets.assets[reservation["asset_id"]].reservation.received is not None  # type: ignore[union-attr]
    assert (await post_to_bucket(reservation["upload"], PNG)).status_code == 204
    await api.client.post(f"/assets/{reservation['asset_id']}/complete")
    assert (await wait_for(api.client, reservation["asset_id"]))["size_bytes"] == len(PNG)


# Asset URLs as technique inputs -----------------------------------------------------------------------------------


async def test_a_technique_runs_on_an_uploaded_asset(shared_api: Api) -> None:
    photo = jpeg_bytes(300_000)
    asset = (await direct(shared_api.client, photo, name="me.jpg", content_type="image/jpeg")).json()
    run = await shared_api.run("cctv-cam", {"input_image": asset["url"]})
    assert run["status"] == "completed", run
    still = await shared_api.image(run["outputs"][0]["url"])
    assert still.size == (640, 480)
