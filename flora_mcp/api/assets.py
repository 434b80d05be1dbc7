"""FLORA's assets: turn a local file (or a public URL) into a FLORA-hosted URL that a technique accepts.

    upload_file(file)    <= 4 MB: one multipart `POST /assets`
                         larger:  reserve (`source: "signed-url"`), send the bytes to the upload target, complete
                         then poll `GET /assets/{id}` until `ready`, at most `ready_timeout` seconds
    upload_url(url)      `POST /assets` with `source: url`: FLORA fetches it, no bytes leave the machine

The upload target is a storage bucket, not FLORA: it gets no FLORA key, and it is reached only through the fetch
guard (a target on a private address is refused; FLORA on loopback, as the sandbox is, may use its own port). A failed
or expired signed upload gets a fresh target through `POST /assets/{id}/retry`, `MAX_SIGNED_ROUNDS` times at most.
Every mutating call to FLORA carries one idempotency key, made for that call and reused on each of its retries; a
duplicate answer means an earlier attempt of the same call got through, and is handled without guessing (see
`_create`). Files are judged by their bytes before anything is sent: FLORA refuses all but `ALLOWED_MEDIA_TYPES`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable
from typing import Any

import anyio
import httpx

from flora_mcp._fetch_guard import FetchPolicy, guarded_client
from flora_mcp._media import (
    ALLOWED_MEDIA_TYPES,
    DIRECT_UPLOAD_MAX_BYTES,
    canonical_media_type,
    sniff_media_type,
)
from flora_mcp.api._upload_body import (
    Body,
    FileSource,
    ProgressCallback,
    UploadInput,
    multipart_body,
    open_source,
    raw_body,
)
from flora_mcp.api.client import FloraClient, _next_cursor, _parse, _parse_items, _seg
from flora_mcp.api.errors import (
    APIError,
    BadRequestError,
    IdempotencyError,
    UnsafeURLError,
    UploadError,
    map_transport_errors,
)
from flora_mcp.api.models import Asset

__all__ = ["DEFAULT_POLL_INTERVAL", "DEFAULT_READY_TIMEOUT", "MAX_DATA_URL_BYTES", "MAX_SIGNED_ROUNDS",
           "MAX_UPLOAD_BYTES", "Assets", "ProgressCallback", "UploadInput"]

log = logging.getLogger("flora_mcp.api")

DEFAULT_POLL_INTERVAL = 1.0
"""Seconds between two polls of an asset that is not ready yet (FLORA's SDK polls every second)."""
DEFAULT_READY_TIMEOUT = 120.0
"""Longest wait for an asset to become ready (FLORA's SDK waits 2 minutes)."""
MAX_SIGNED_ROUNDS = 3
"""Upload targets one signed upload may use: the first, and `MAX_SIGNED_ROUNDS - 1` fresh ones from retry."""
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
"""flora-mcp's own cap on a local file it uploads (FLORA_MAX_UPLOAD_BYTES)."""
MAX_DATA_URL_BYTES = 10 * 1024 * 1024
"""flora-mcp's own cap on a decoded `data:` value it uploads (FLORA_MAX_DATA_URL_BYTES): it came inside a tool call's
arguments, so it is in memory already, and a hosted server takes it from anyone with a token."""


def _key() -> str:
    return f"flora-mcp-asset-{uuid.uuid4()}"


class Assets:
    """FLORA's assets endpoints, and uploads built on them, for one `FloraClient`.

    Args:
        client: the FLORA client (its key, retry policy and transport).
        policy: where an upload target may be; by default `FetchPolicy.for_flora(client.base_url)`.
        poll_interval: seconds between polls of a pending asset.
        ready_timeout: longest wait for an asset to become ready.
    """

    def __init__(self, client: FloraClient, *, policy: FetchPolicy | None = None,
                 poll_interval: float = DEFAULT_POLL_INTERVAL, ready_timeout: float = DEFAULT_READY_TIMEOUT) -> None:
        self.client = client
        self.policy = policy or FetchPolicy.for_flora(client.base_url)
        self.poll_interval = poll_interval
        self.ready_timeout = ready_timeout

    # One-call uploads --------------------------------------------------------------------------------------------

    async def upload_file(
        self,
        file: UploadInput,
        *,
        workspace_id: str,
        content_type: str | None = None,
        file_name: str | None = None,
        folder: str | None = None,
        project_id: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> Asset:
        """Upload a file (a path, a binary stream or bytes) and wait until FLORA has it `ready`.

        Args:
            file: what to upload; a path or a seekable stream is streamed from disk, never read whole.
            workspace_id: the workspace the asset belongs to (`ws_...`).
            content_type: the media type; by default the one the file's bytes show.
            file_name: the asset's name; by default the file's base name.
            folder: a folder in the workspace.
            project_id: a project (`prj_...`).
            progress: called with `(bytes_sent, total_bytes)` while the bytes go.

        Returns:
            The ready asset; its `url` is what a technique input takes.

        Raises:
            UploadError: the file is not media FLORA accepts (nothing sent), or FLORA failed it, or it is not ready in
                time (its `asset_id` says which asset to look at).
            APIError: FLORA or the upload target refused or failed.
            OSError: the file cannot be read.
        """
        source = await open_source(file)
        try:
            name = file_name or source.name or "file"
            kind = self._content_type(source, content_type, name)
            options = {"folder": folder, "project_id": project_id}
            if source.size <= DIRECT_UPLOAD_MAX_BYTES:
                asset = await self._create(
                    lambda key: self._post_direct(source, workspace_id, kind, name, options, progress, key))
            else:
                asset = await self._signed(source, workspace_id, kind, name, options, progress)
            log.info("uploaded %s (%d bytes, %s) as asset %s", name, source.size, kind, asset.asset_id)
            return asset
        finally:
            source.close()

    async def upload_url(self, url: str, *, workspace_id: str, content_type: str | None = None,
                         file_name: str | None = None) -> Asset:
        """Have FLORA fetch a public https URL into an asset, and wait until it is `ready`."""
        body = _drop_none({"source": url, "workspace_id": workspace_id, "content_type": content_type,
                           "file_name": file_name})
        created = await self._create(lambda key: self._post_json(body, key))
        return await self._ready(created)

    # The endpoints -----------------------------------------------------------------------------------------------

    async def reserve(self, *, workspace_id: str, content_type: str | None = None, file_name: str | None = None,
                      folder: str | None = None, project_id: str | None = None) -> Asset:
        """A signed-upload reservation: an asset `pending_upload` with its upload target."""
        body = _drop_none({"source": "signed-url", "workspace_id": workspace_id, "content_type": content_type,
                           "file_name": file_name, "folder": folder, "project_id": project_id})
        asset = await self._create(lambda key: self._post_json(body, key))
        if asset.upload is None and not asset.upload_url:
            raise _no_target(asset)
        return asset

    async def complete(self, asset_id: str) -> Asset:
        """Tell FLORA the bytes are at the upload target; the asset moves on to `ready` or `failed`."""
        endpoint = "POST /assets/{id}/complete"
        try:
            body, rid = await self.client._request("POST", f"assets/{_seg(asset_id)}/complete", endpoint=endpoint,
                                                   idempotency_key=_key())
        except IdempotencyError:
            return await self.get(asset_id)  # an earlier attempt of this call completed it
        return _parse(Asset, body, endpoint=endpoint, request_id=rid)

    async def retry(self, asset_id: str) -> Asset:
        """A fresh upload target for a failed or expired signed upload."""
        endpoint = "POST /assets/{id}/retry"
        for _ in range(2):
            try:
                body, rid = await self.client._request("POST", f"assets/{_seg(asset_id)}/retry", endpoint=endpoint,
                                                       idempotency_key=_key())
            except IdempotencyError:
                continue  # an earlier attempt renewed the target but its answer was lost: renew again
            asset = _parse(Asset, body, endpoint=endpoint, request_id=rid)
            if asset.upload is None and not asset.upload_url:
                raise _no_target(asset)
            return asset
        raise UploadError(f"asset {asset_id}: FLORA kept answering that its retry was a duplicate",
                          asset_id=asset_id)

    async def get(self, asset_id: str) -> Asset:
        endpoint = "GET /assets/{id}"
        body, rid = await self.client._request("GET", f"assets/{_seg(asset_id)}", endpoint=endpoint)
        return _parse(Asset, body, endpoint=endpoint, request_id=rid)

    async def list(self, *, workspace_id: str | None = None, project_id: str | None = None, query: str | None = None,
                   cursor: str | None = None, limit: int = 50) -> tuple[list[Asset], str | None]:
        """One page of assets and the next page's cursor."""
        endpoint = "GET /assets"
        params: dict[str, Any] = _drop_none({"workspace_id": workspace_id, "project_id": project_id, "query": query,
                                             "cursor": cursor})
        params["limit"] = limit
        body, rid = await self.client._request("GET", "assets", endpoint=endpoint, params=params)
        items = body.get("assets") if isinstance(body, dict) else body
        return _parse_items(Asset, items if isinstance(items, list) else [], endpoint=endpoint,
                            request_id=rid), _next_cursor(body)

    async def wait_ready(self, asset: Asset) -> Asset:
        """Poll until the asset is `ready` or `failed`.

        Raises:
            UploadError: still `pending_upload` after `ready_timeout` seconds.
        """
        with anyio.move_on_after(self.ready_timeout):
            while asset.status == "pending_upload":
                await anyio.sleep(self.poll_interval)
                asset = await self.get(asset.asset_id)
            return asset
        raise UploadError(f"asset {asset.asset_id} was still {asset.status} after {self.ready_timeout:g} s; "
                          f"look at it again later (GET /assets/{asset.asset_id})", asset_id=asset.asset_id,
                          status=asset.status)

    # The flows ---------------------------------------------------------------------------------------------------

    @staticmethod
    def _content_type(source: FileSource, declared: str | None, name: str) -> str:
        sniffed = sniff_media_type(source.head)
        if sniffed is None:
            raise UploadError(f"{name} is not a media type FLORA accepts (judged by its content, not its name); "
                              f"allowed: {', '.join(sorted(ALLOWED_MEDIA_TYPES))}")
        chosen = canonical_media_type(declared) or sniffed
        if chosen not in ALLOWED_MEDIA_TYPES:
            raise UploadError(f"{name}: {chosen} is not a media type FLORA accepts")
        return chosen

    async def _create(self, post: Any) -> Asset:
        """Run a creating POST with a fresh key; a duplicate means an earlier attempt made an asset whose answer was
        lost. Its id is unknown and no listing can tell it apart from another upload of the same name, so a second
        call with a new key makes a new asset (assets cost nothing; the orphan is logged)."""
        try:
            asset: Asset = await post(_key())
        except IdempotencyError as exc:
            log.warning("an earlier attempt of %s created an asset whose answer was lost (request-id %s); "
                        "creating a new one", exc.endpoint, exc.request_id)
            asset = await post(_key())
        return asset

    async def _post_json(self, body: dict[str, Any], key: str) -> Asset:
        endpoint = "POST /assets"
        answer, rid = await self.client._request("POST", "assets", endpoint=endpoint, json=body, idempotency_key=key)
        return _parse(Asset, answer, endpoint=endpoint, request_id=rid)

    async def _post_direct(self, source: FileSource, workspace_id: str, content_type: str, name: str,
                           options: dict[str, str | None], progress: ProgressCallback | None, key: str) -> Asset:
        fields = [("workspace_id", workspace_id), ("content_type", content_type), ("file_name", name),
                  *((k, v) for k, v in options.items() if v is not None)]
        body = multipart_body(fields, file_field="file", file_name=name, content_type=content_type, source=source,
                              progress=progress)
        endpoint = "POST /assets (multipart)"
        answer, rid = await self.client._request("POST", "assets", endpoint=endpoint, content=body.chunks,
                                                 headers=body.headers, idempotency_key=key)
        return await self._ready(_parse(Asset, answer, endpoint=endpoint, request_id=rid))

    async def _ready(self, asset: Asset) -> Asset:
        final = await self.wait_ready(asset)
        if not final.is_ready:
            raise _failed(final)
        return final

    async def _signed(self, source: FileSource, workspace_id: str, content_type: str, name: str,
                      options: dict[str, str | None], progress: ProgressCallback | None) -> Asset:
        asset = await self.reserve(workspace_id=workspace_id, content_type=content_type, file_name=name, **options)
        for round_ in range(1, MAX_SIGNED_ROUNDS + 1):
            last = round_ == MAX_SIGNED_ROUNDS
            try:
                await self._send_to_target(asset, source, content_type, name, progress)
                done = await self.complete(asset.asset_id)
            except UnsafeURLError:
                raise
            except APIError as exc:
                # The target refused or failed (expired, a transfer that kept breaking), or FLORA found no bytes
                # there (a 400 from complete); anything else from FLORA itself is not cured by a fresh target.
                from_flora = exc.endpoint.startswith("POST /assets")
                if last or (from_flora and not isinstance(exc, BadRequestError)):
                    raise
                log.warning("signed upload of asset %s failed (%s); retrying it", asset.asset_id, exc.message)
                asset = await self._renew(asset)
                continue
            final = await self.wait_ready(done)
            if final.is_ready:
                return final
            if last:
                raise _failed(final)
            log.warning("asset %s failed (%s); retrying the upload", asset.asset_id, final.failure_message)
            asset = await self.retry(asset.asset_id)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _renew(self, asset: Asset) -> Asset:
        """A fresh target; when FLORA says the current one is still open, that one again."""
        try:
            return await self.retry(asset.asset_id)
        except BadRequestError:
            return asset

    async def _send_to_target(self, asset: Asset, source: FileSource, content_type: str, name: str,
                              progress: ProgressCallback | None) -> None:
        """Send the bytes to the reservation's storage bucket, with no FLORA key, through the fetch guard."""
        if asset.upload is not None:
            target = asset.upload
            method, url, endpoint = target.method.upper() or "POST", self.client.absolute(target.url), "upload target"
            body: Body = multipart_body(list(target.form_fields.items()), file_field=target.file_field,
                                        file_name=name, content_type=content_type, source=source, progress=progress)
        elif asset.upload_url:
            method, url, endpoint = "PUT", self.client.absolute(asset.upload_url), "upload target (PUT)"
            body = raw_body(content_type=content_type, source=source, progress=progress)
        else:
            raise _no_target(asset)
        with map_transport_errors(endpoint):
            destination = await self.policy.check(url)
        headers = {**body.headers, "Host": destination.host_header}
        async with guarded_client(timeout=self.client.timeout, transport=self.client.transport) as http:

            def send() -> Awaitable[httpx.Response]:
                return http.request(method, destination.request_url, content=body.chunks(), headers=headers,
                                    extensions=destination.extensions)

            # Sending the same object again is harmless, so every failure the policy retries is retried.
            await self.client.send_retrying(send, endpoint=endpoint, idempotent=True, expect_json=False)


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _no_target(asset: Asset) -> APIError:
    return APIError(f"POST /assets: the reservation of asset {asset.asset_id} has no upload target",
                    endpoint="POST /assets")


def _failed(asset: Asset) -> UploadError:
    why = asset.failure_message or "no reason given"
    return UploadError(f"FLORA could not use the upload as asset {asset.asset_id}: {why}", asset_id=asset.asset_id,
                       status=asset.status, failure_message=asset.failure_message)

