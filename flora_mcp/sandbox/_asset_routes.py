"""Asset routes: `POST /assets` in its three forms, `complete`, `retry`, retrieve and list.

    multipart (`file` <= 4 MB)          -> judged at once: `ready`, or a 413/422 naming the file
    JSON `source: <https URL>`          -> `pending_upload`; the sandbox fetches its own `/files/` URLs only (it never
                                           reaches the internet) and refuses private, loopback and metadata addresses
    JSON `source: "signed-url"`         -> `pending_upload` and an upload target on the bucket (`_bucket.py`)
    `POST /assets/{id}/complete`        -> the uploaded bytes are judged: `ready` or `failed`
    `POST /assets/{id}/retry`           -> a fresh target for a failed or expired signed upload

Mutating calls follow the runs' idempotency rules (a key reused within the window: 409 with the same request,
422 with another), and a call that made nothing does not use its key.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from flora_mcp._fetch_guard import address_refusal, parse_address
from flora_mcp._media import DIRECT_UPLOAD_MAX_BYTES, URL_SOURCE_MAX_BYTES
from flora_mcp.sandbox._assets import Asset, accept_declared, iso_time, judge_file, safe_file_name
from flora_mcp.sandbox._catalog import decode_cursor, encode_cursor
from flora_mcp.sandbox._config import Account
from flora_mcp.sandbox._errors import FieldError, SandboxError
from flora_mcp.sandbox._fetch import Fetcher, FetchError
from flora_mcp.sandbox._http import authenticate, idempotency_key_of, origin_of, query_limit, read_json_object, state_of
from flora_mcp.sandbox._state import SandboxState, body_fingerprint

__all__ = ["complete_asset", "create_asset", "get_asset", "list_assets", "retry_asset"]

logger = logging.getLogger(__name__)

SIGNED = "signed-url"
_OPTIONAL_TEXT = ("content_type", "file_name", "folder", "project_id")


def check_workspace(account: Account, value: Any, errors: list[FieldError]) -> str | None:
    """The workspace a request names: a field error when missing, 403 when the key may not use it."""
    if not isinstance(value, str) or not value.startswith("ws_"):
        errors.append(FieldError("workspace_id", "Required: a workspace id starting with ws_"))
        return None
    if value not in account.workspaces:
        raise SandboxError(403, "forbidden", f"This API key has no access to workspace {value!r}.")
    return value


def _check_options(values: dict[str, Any], errors: list[FieldError]) -> None:
    for name in _OPTIONAL_TEXT:
        if values.get(name) is not None and not isinstance(values[name], str):
            errors.append(FieldError(name, "Must be a string"))
    project = values.get("project_id")
    if isinstance(project, str) and not project.startswith("prj_"):
        errors.append(FieldError("project_id", "Must be a project id starting with prj_"))


def _new_asset(state: SandboxState, api_key: str, workspace_id: str, via: Any, values: dict[str, Any],
               name: str) -> Asset:
    return Asset(
        asset_id=state.assets.new_id(), api_key=api_key, workspace_id=workspace_id, uploaded_via=via, name=name,
        sequence=state.assets.next_sequence(), upload_content_type=accept_declared(values.get("content_type")),
        folder=values.get("folder"), project_id=values.get("project_id"),
    )


def _publish(files_dir: Path, asset: Asset, source: Path, content_type: str | None) -> str:
    relative = f"assets/{asset.asset_id}/{safe_file_name(asset.name, content_type)}"
    target = files_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, target)
    return relative


async def _process(state: SandboxState, asset: Asset, source: Path, max_bytes: int) -> None:
    """Judge bytes that arrived for an asset and make it `ready` or `failed`; never raises."""
    asset.processing = True
    try:
        if state.config.asset_processing_delay > 0:
            await anyio.sleep(state.config.asset_processing_delay)
        judged = await anyio.to_thread.run_sync(judge_file, source, max_bytes)
        if judged.problem is not None:
            source.unlink(missing_ok=True)
            asset.fail(judged.problem)
            return
        assert state.files_dir is not None
        path = await anyio.to_thread.run_sync(_publish, state.files_dir, asset, source, judged.content_type)
        asset.become_ready(judged, path)
    except Exception as exc:  # a bug here must fail the asset, not the sandbox
        logger.exception("processing asset %s crashed", asset.asset_id)
        asset.fail(f"Processing the upload failed: {exc!r}")


def _require_running(state: SandboxState) -> None:
    if state.task_group is None or state.files_dir is None or state.assets.bucket_dir is None:
        raise RuntimeError("the sandbox app is not running: start it with its lifespan (serve_sandbox does)")


def _start(state: SandboxState, work: Any, *args: Any) -> None:
    _require_running(state)
    assert state.task_group is not None
    state.task_group.start_soon(work, *args)


def _answer(state: SandboxState, asset: Asset, origin: str) -> Response:
    data = asset.to_json(origin)
    held = asset.reservation
    if asset.uploaded_via == "signed_url" and held is not None and asset.status == "pending_upload" \
            and not asset.processing:
        data["expires_at"] = iso_time(held.expires_at)
        if state.config.signed_upload == "post":
            data["upload"] = {
                "url": f"{origin}/bucket",
                "method": "POST",
                "content_type": "multipart/form-data",
                "file_field": "file",
                "form_fields": state.assets.policy_fields(asset, state.config.asset_max_bytes),
            }
        else:
            key = asset.object_key()
            assert key is not None
            signature = state.assets.put_signature(key, held.expires_at)
            data["upload_url"] = f"{origin}/bucket/{key}?expires={held.expires_at!r}&signature={signature}"
    return JSONResponse(data)


# POST /assets -----------------------------------------------------------------------------------------------------


async def create_asset(request: Request) -> Response:
    api_key, account = authenticate(request)
    if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return await _create_direct(request, api_key, account)
    state = state_of(request)
    body = await read_json_object(request)
    errors: list[FieldError] = []
    workspace_id = check_workspace(account, body.get("workspace_id"), errors)
    source = body.get("source")
    origin = origin_of(request)
    if not isinstance(source, str) or not source:
        errors.append(FieldError("source", f'Required: a public https URL, or "{SIGNED}" to reserve a signed upload'))
    elif source != SIGNED:
        problem = source_problem(source, origin)
        if problem:
            errors.append(FieldError("source", problem))
    _check_options(body, errors)
    if errors:
        raise SandboxError.validation(errors)
    assert workspace_id is not None and isinstance(source, str)
    key = idempotency_key_of(request, body)
    fingerprint = body_fingerprint("assets", body)
    state.check_idempotency(api_key, key, fingerprint)
    if source == SIGNED:
        asset = _new_asset(state, api_key, workspace_id, "signed_url", body, body.get("file_name") or "file")
        _require_running(state)
        state.assets.reserve(asset, state.config.asset_reservation_ttl)
    else:
        name = body.get("file_name") or urlsplit(source).path.rsplit("/", 1)[-1] or "file"
        asset = _new_asset(state, api_key, workspace_id, "url", body, name)
        _start(state, _fetch_source, state, asset, source, origin)
    state.assets.add(asset)
    state.remember(api_key, key, fingerprint, asset.asset_id)
    return _answer(state, asset, origin)


def source_problem(url: str, own_origin: str) -> str | None:
    """Why a `source` URL is refused, or None: the sandbox's own files, never a private address, never the internet."""
    if url.startswith(own_origin.rstrip("/") + "/files/"):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "Must be a valid URL"
    if parts.scheme != "https" or not parts.hostname:
        return "Must be a public https URL"
    host = parts.hostname
    address = parse_address(host)
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return "Refused: localhost is a loopback address; FLORA fetches public addresses only"
    if address is not None:
        reason = address_refusal(address, port=port)
        if reason:
            return f"Refused: {host} is {reason}; FLORA fetches public addresses only"
    return f"The sandbox does not reach the internet: it fetches only its own URLs ({own_origin}/files/...)"


async def _fetch_source(state: SandboxState, asset: Asset, url: str, origin: str) -> None:
    assert state.files_dir is not None and state.assets.bucket_dir is not None
    fetcher = Fetcher(origin, state.files_dir, URL_SOURCE_MAX_BYTES, state.config.fetch_timeout)
    try:
        data = await fetcher.fetch(url)
    except FetchError as exc:
        asset.fail(f"The source URL could not be fetched: {exc}")
        return
    target = state.assets.bucket_dir / f"fetched-{asset.asset_id}"
    await anyio.Path(target).write_bytes(data)
    await _process(state, asset, target, URL_SOURCE_MAX_BYTES)


async def _create_direct(request: Request, api_key: str, account: Account) -> Response:
    state = state_of(request)
    _require_running(state)
    async with request.form(max_files=1, max_fields=16) as form:
        fields: dict[str, Any] = {name: value for name, value in form.multi_items() if isinstance(value, str)}
        upload = form.get("file")
        errors: list[FieldError] = []
        workspace_id = check_workspace(account, fields.get("workspace_id"), errors)
        if not isinstance(upload, UploadFile):
            errors.append(FieldError("file", "Required: the file, as a multipart part named file"))
        _check_options(fields, errors)
        if errors:
            raise SandboxError.validation(errors)
        assert isinstance(upload, UploadFile) and workspace_id is not None
        size = upload.size or 0
        if size > DIRECT_UPLOAD_MAX_BYTES:
            raise SandboxError.validation(
                [FieldError("file", f"{size} bytes is more than the {DIRECT_UPLOAD_MAX_BYTES}-byte limit of a direct "
                                    f'upload; reserve a signed upload (source: "{SIGNED}") instead')], status=413)
        assert state.assets.bucket_dir is not None
        incoming = state.assets.bucket_dir / f"direct-{secrets.token_hex(8)}"
        digest = await anyio.to_thread.run_sync(_save, upload, incoming)
    key = request.headers.get("idempotency-key")
    fingerprint = body_fingerprint("assets:direct", {**fields, "file_sha256": digest})
    try:
        state.check_idempotency(api_key, key, fingerprint)
        judged = await anyio.to_thread.run_sync(judge_file, incoming, DIRECT_UPLOAD_MAX_BYTES)
        if judged.problem is not None:
            raise SandboxError.validation([FieldError("file", judged.problem)])
        name = fields.get("file_name") or upload.filename or "file"
        asset = _new_asset(state, api_key, workspace_id, "direct", fields, name)
        assert state.files_dir is not None
        path = await anyio.to_thread.run_sync(_publish, state.files_dir, asset, incoming, judged.content_type)
    finally:
        incoming.unlink(missing_ok=True)
    asset.become_ready(judged, path)
    state.assets.add(asset)
    state.remember(api_key, key, fingerprint, asset.asset_id)
    return _answer(state, asset, origin_of(request))


def _save(upload: UploadFile, target: Path) -> str:
    """Copy an uploaded part to `target`, returning its SHA-256."""
    digest = hashlib.sha256()
    upload.file.seek(0)
    with target.open("wb") as out:
        while chunk := upload.file.read(1024 * 1024):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


# complete, retry, retrieve, list ----------------------------------------------------------------------------------


def _own_asset(request: Request) -> tuple[str, SandboxState, Asset]:
    api_key, _ = authenticate(request)
    state = state_of(request)
    asset = state.assets.owned(api_key, request.path_params["asset_id"])
    if asset is None:
        raise SandboxError(404, "not_found", "Asset not found.")
    return api_key, state, asset


def _not_signed(asset: Asset, action: str) -> SandboxError:
    message = f"Only a signed upload can be {action}; this asset was uploaded via {asset.uploaded_via}"
    return SandboxError.validation([FieldError("asset_id", message)], status=400)


async def complete_asset(request: Request) -> Response:
    api_key, state, asset = _own_asset(request)
    key = request.headers.get("idempotency-key")
    fingerprint = body_fingerprint("assets:complete", {"asset_id": asset.asset_id})
    state.check_idempotency(api_key, key, fingerprint)
    if asset.uploaded_via != "signed_url":
        raise _not_signed(asset, "completed")
    held = asset.reservation
    if asset.status == "pending_upload" and not asset.processing and held is not None:
        if held.received is None:
            raise SandboxError.validation(
                [FieldError("asset_id", "No file has arrived at this asset's upload target yet")], status=400)
        received, held.received = held.received, None
        asset.processing = True
        _start(state, _process, state, asset, received, state.config.asset_max_bytes)
    state.remember(api_key, key, fingerprint, asset.asset_id)
    return _answer(state, asset, origin_of(request))


async def retry_asset(request: Request) -> Response:
    api_key, state, asset = _own_asset(request)
    key = request.headers.get("idempotency-key")
    fingerprint = body_fingerprint("assets:retry", {"asset_id": asset.asset_id})
    state.check_idempotency(api_key, key, fingerprint)
    if asset.uploaded_via != "signed_url":
        raise _not_signed(asset, "retried")
    held = asset.reservation
    if asset.status == "ready" or asset.processing:
        raise SandboxError.validation(
            [FieldError("asset_id", f"Only a failed or expired signed upload can be retried; this one is "
                                    f"{'being processed' if asset.processing else asset.status}")], status=400)
    if asset.status == "pending_upload" and held is not None and not held.expired():
        raise SandboxError.validation(
            [FieldError("asset_id", f"The upload target is open until {iso_time(held.expires_at)}; upload to it")],
            status=400)
    if held is not None and held.received is not None:
        held.received.unlink(missing_ok=True)
    state.assets.reserve(asset, state.config.asset_reservation_ttl)
    state.remember(api_key, key, fingerprint, asset.asset_id)
    return _answer(state, asset, origin_of(request))


async def get_asset(request: Request) -> Response:
    _, state, asset = _own_asset(request)
    return _answer(state, asset, origin_of(request))


async def list_assets(request: Request) -> Response:
    api_key, account = authenticate(request)
    state = state_of(request)
    params = request.query_params
    limit = query_limit(request, state.config.assets_page_size, state.config.max_page_size)
    workspace_id = params.get("workspace_id")
    if workspace_id is not None and workspace_id not in account.workspaces:
        raise SandboxError(403, "forbidden", f"This API key has no access to workspace {workspace_id!r}.")
    assets = [a for a in reversed(state.assets.assets.values()) if a.api_key == api_key]
    for asset in assets:
        asset.expire_if_due()
    if workspace_id is not None:
        assets = [a for a in assets if a.workspace_id == workspace_id]
    if "project_id" in params:
        assets = [a for a in assets if a.project_id == params["project_id"]]
    if params.get("query"):
        query = params["query"].lower()
        assets = [a for a in assets if query in a.name.lower()]
    if "cursor" in params:
        before = decode_cursor("a", params["cursor"])
        assets = [a for a in assets if a.sequence < before]
    page = assets[:limit]
    next_cursor = encode_cursor("a", page[-1].sequence) if len(assets) > limit else None
    origin = origin_of(request)
    items = [asset.to_json(origin, listing=True) for asset in page]
    return JSONResponse({"assets": items, "meta": {"limit": limit, "next_cursor": next_cursor}})
