"""The storage "bucket" that signed uploads go to: a presigned POST form at `/bucket`, or a presigned PUT.

It stands for a cloud storage bucket, not for FLORA: it takes no FLORA key, and refuses a request that sends one (as
S3 refuses a second way of authenticating), because a client that sends its key here would send it to a storage
provider. It answers like S3: 204 for a POST, 200 with an `ETag` for a PUT, and XML `<Error>` bodies.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from xml.sax.saxutils import escape

import anyio
import anyio.to_thread
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from flora_mcp.sandbox._assets import Asset, AssetStore
from flora_mcp.sandbox._http import state_of

__all__ = ["bucket_post", "bucket_put"]

_CHUNK = 1024 * 1024
_STATUS = {"AccessDenied": 403, "SignatureDoesNotMatch": 403, "NoSuchUpload": 404}


def _error(code: str, message: str, status: int | None = None) -> Response:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message><RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>")
    return Response(body, status or _STATUS.get(code, 400), media_type="application/xml")


def _refusal(verdict: str) -> Response:
    code, _, message = verdict.partition(": ")
    return _error(code, message or "The request signature we calculated does not match the signature you provided.")


def _sends_a_key(request: Request) -> Response | None:
    if "authorization" in request.headers:
        return _error("InvalidArgument", "Unsupported Authorization Type: this upload target takes no API key; "
                                         "the signed form fields authorize it.")
    return None


def _open_for(asset: Asset, store: AssetStore) -> Response | None:
    if asset.status != "pending_upload" or asset.processing or store.bucket_dir is None:
        return _error("AccessDenied", "The upload target was closed: the upload was already completed.")
    return None


def _copy(upload: UploadFile, target: Path) -> int:
    upload.file.seek(0)
    size = 0
    with target.open("wb") as out:
        while chunk := upload.file.read(_CHUNK):
            size += len(chunk)
            out.write(chunk)
    return size


async def bucket_post(request: Request) -> Response:
    """A presigned POST: the policy's form fields first, then the file part named `file`."""
    refused = _sends_a_key(request)
    if refused is not None:
        return refused
    store = state_of(request).assets
    async with request.form(max_files=1, max_fields=32) as form:
        fields = {name: value for name, value in form.multi_items() if isinstance(value, str)}
        verdict = store.verify_policy(fields)
        if isinstance(verdict, str):
            return _refusal(verdict)
        asset, policy = verdict
        closed = _open_for(asset, store)
        if closed is not None:
            return closed
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return _error("InvalidArgument", "POST requires exactly one file upload per request.")
        if asset.upload_content_type and fields.get("Content-Type") != asset.upload_content_type:
            return _error("AccessDenied", "Invalid according to Policy: Policy Condition failed: Content-Type")
        low, high = policy["content_length_range"]
        size = upload.size or 0
        if size < low:
            return _error("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size.")
        if size > high:
            return _error("EntityTooLarge", f"Your proposed upload exceeds the maximum allowed size ({high} bytes).")
        assert store.bucket_dir is not None
        incoming = store.bucket_dir / f"incoming-{secrets.token_hex(8)}"
        await anyio.to_thread.run_sync(_copy, upload, incoming)
    store.receive(asset, incoming)
    return Response(status_code=204)


async def bucket_put(request: Request) -> Response:
    """A presigned PUT: the raw bytes, with the `Content-Type` the reservation named."""
    refused = _sends_a_key(request)
    if refused is not None:
        return refused
    state = state_of(request)
    store = state.assets
    object_key = request.path_params["key"]
    expires, signature = request.query_params.get("expires", ""), request.query_params.get("signature", "")
    try:
        expires_at = float(expires)
    except ValueError:
        return _refusal("SignatureDoesNotMatch")
    if not hmac.compare_digest(store.put_signature(object_key, expires_at), signature):
        return _refusal("SignatureDoesNotMatch")
    asset = store.by_object_key(object_key)
    if asset is None or asset.reservation is None or asset.reservation.expires_at != expires_at:
        return _error("AccessDenied", "The upload target was replaced or withdrawn.")
    if asset.reservation.expired():
        return _error("AccessDenied", "Request has expired")
    closed = _open_for(asset, store)
    if closed is not None:
        return closed
    declared = request.headers.get("content-type")
    if asset.upload_content_type and declared != asset.upload_content_type:
        return _error("SignatureDoesNotMatch", "The Content-Type is not the one the upload URL was signed for.")
    data = await request.body()
    if not data:
        return _error("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size.")
    if len(data) > state.config.asset_max_bytes:
        return _error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
    assert store.bucket_dir is not None
    incoming = store.bucket_dir / f"incoming-{secrets.token_hex(8)}"
    await anyio.Path(incoming).write_bytes(data)
    store.receive(asset, incoming)
    return Response(status_code=200, headers={"ETag": f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'})
