"""Media inputs in: local paths and `data:` values of a call become FLORA asset URLs before the run is created.

    prepare(tool, args)   local work only, no request: each path or data: value of a media input is checked and
                          opened (`local_files`); any refusal is a field error naming the input, the value and why
    upload(prepared)      the workspace (`WorkspaceChooser`), then each distinct file (by SHA-256) that this account
                          has not uploaded to that workspace before (the store's remembered uploads; a remembered
                          asset is read once to see that FLORA still has it), concurrently, with progress; the
                          arguments come back with the asset URLs in place, and the list of what left the machine

https URLs and element ids pass through untouched. The caller checks the cost caps between the two steps, so a call
that would be refused for its price sends no byte.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread

from flora_mcp.api.assets import Assets
from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import APIError, FloraError, NotFoundError, UploadError
from flora_mcp.api.models import Technique
from flora_mcp.core.local_files import KIND_BY_INPUT_TYPE, FilePolicy, LocalMedia, Refused, classify, describe_size
from flora_mcp.core.results import FieldError, InputUpload
from flora_mcp.store import RememberedAsset, Store

__all__ = ["UPLOAD_CONCURRENCY", "MediaInputs", "PolicyProvider", "Prepared", "WorkspaceChooser", "WorkspaceError"]

log = logging.getLogger("flora_mcp.core.media_in")

UPLOAD_CONCURRENCY = 4
"""Files of one call uploaded at once."""
_HASH_CHUNK = 1024 * 1024

UploadProgress = Callable[[int, int, str], Awaitable[None] | None]
"""`(bytes_sent, total_bytes, message)` across every upload of a call, never going back."""
PolicyProvider = Callable[[], Awaitable[FilePolicy]]
"""Makes the call's `FilePolicy`, asked only when a value is local (the client's MCP roots may need a request)."""


class WorkspaceError(FloraError):
    """No workspace can be chosen for uploads: none, or several and FLORA_WORKSPACE_ID does not name one."""

    code = "workspace_required"


class WorkspaceChooser:
    """The workspace uploads go to: FLORA_WORKSPACE_ID when set, else the key's only workspace (asked once)."""

    def __init__(self, client: FloraClient, configured: str | None) -> None:
        self.client = client
        self._chosen = configured
        self._lock = anyio.Lock()

    async def workspace_id(self) -> str:
        if self._chosen:
            return self._chosen
        async with self._lock:
            if self._chosen:
                return self._chosen
            workspaces = await self.client.list_workspaces()
            if len(workspaces) == 1:
                self._chosen = workspaces[0].workspace_id
                log.info("uploads go to workspace %s (%s), the key's only one", self._chosen, workspaces[0].name)
                return self._chosen
            if not workspaces:
                raise WorkspaceError("this FLORA key has no workspace to upload files to")
            listed = "; ".join(f"{w.name or 'unnamed'} ({w.workspace_id})" for w in workspaces)
            raise WorkspaceError(f"this FLORA key has {len(workspaces)} workspaces: {listed}. Set FLORA_WORKSPACE_ID "
                                 "to the one files should be uploaded to (runs then go to it too).")


@dataclass
class _Slot:
    input_id: str
    index: int | None
    """Position in a multiple-value list; None for a lone value."""
    media: LocalMedia
    sha256: str = ""


@dataclass
class Prepared:
    """A call's media values that need uploading, opened and checked; close it whatever happens next."""

    args: dict[str, Any]
    slots: list[_Slot] = field(default_factory=list)

    @property
    def needs_upload(self) -> bool:
        return bool(self.slots)

    @property
    def total_bytes(self) -> int:
        return sum(slot.media.size for slot in self.slots)

    def close(self) -> None:
        for slot in self.slots:
            slot.media.close()


class MediaInputs:
    """Uploads a call's local media for one account.

    Args:
        assets: FLORA's assets, for this account's client.
        memo: which bytes are already assets.
        account: the account hash (as the journal's).
        workspace: chooses the workspace uploads go to.
    """

    def __init__(self, assets: Assets, memo: Store, account: str, workspace: WorkspaceChooser) -> None:
        self.assets = assets
        self.memo = memo
        self.account = account
        self.workspace = workspace

    async def prepare(self, technique: Technique, args: Mapping[str, Any],
                      policy_for: PolicyProvider) -> Prepared | list[FieldError]:
        """Check and open every local value of the media inputs; the refusals when any is refused (all closed)."""
        wanted = [(io.id, KIND_BY_INPUT_TYPE[io.type], io.accepts_element) for io in technique.inputs or []
                  if io.type in KIND_BY_INPUT_TYPE and io.id in args]
        return await self._prepare(args, wanted, policy_for)

    async def prepare_files(self, files: Sequence[str], policy_for: PolicyProvider) -> Prepared | list[FieldError]:
        """Check and open files to upload on their own (`flora-mcp upload`): any FLORA media, named `file 1`, ..."""
        args = {f"file {index}": value for index, value in enumerate(files, 1)}
        return await self._prepare(args, [(name, None, False) for name in args], policy_for)

    async def _prepare(self, args: Mapping[str, Any], wanted: Sequence[tuple[str, str | None, bool]],
                       policy_for: PolicyProvider) -> Prepared | list[FieldError]:
        prepared = Prepared(dict(args))
        problems: list[FieldError] = []
        policy: FilePolicy | None = None
        for input_id, kind, accepts_element in wanted:
            value = args[input_id]
            for index, item in enumerate(value) if isinstance(value, list) else [(None, value)]:
                if not isinstance(item, str) or not item:
                    continue
                what = classify(item, accepts_element=accepts_element)
                if what in ("url", "element"):
                    continue
                policy = policy or await policy_for()
                try:
                    media = policy.check_data(item, kind) if what == "data" else policy.check_path(item, kind)
                except Refused as refused:
                    shown = "a data: URL" if what == "data" else repr(item)
                    problems.append(FieldError(field=input_id, message=f"{shown} refused: {refused}"))
                    continue
                prepared.slots.append(_Slot(input_id, index, media))
        if problems:
            prepared.close()
            return problems
        return prepared

    async def upload(self, prepared: Prepared,
                     progress: UploadProgress | None = None) -> tuple[dict[str, Any], list[InputUpload]]:
        """Upload what `prepare` opened (each distinct file once) and put the asset URLs into the arguments.

        Raises:
            WorkspaceError: no workspace can be chosen.
            APIError, UploadError: an upload failed; no run should be made.
            OSError: a file could not be read any more.
        """
        args = {key: list(value) if isinstance(value, list) else value for key, value in prepared.args.items()}
        if not prepared.slots:
            return args, []
        workspace_id = await self.workspace.workspace_id()
        try:
            await anyio.to_thread.run_sync(_hash_all, prepared.slots)
        except OSError as exc:
            raise UploadError(f"a file could not be read: {exc.strerror or exc}", sent=False) from exc
        distinct: dict[str, _Slot] = {}
        for slot in prepared.slots:
            distinct.setdefault(slot.sha256, slot)
        known = {sha: await self._still_there(workspace_id, sha) for sha in distinct}
        to_send = [slot for sha, slot in distinct.items() if known[sha] is None]
        meter = _Meter(progress, sum(slot.media.size for slot in to_send))
        limiter = anyio.CapacityLimiter(UPLOAD_CONCURRENCY)

        async def send(slot: _Slot) -> None:
            async with limiter:
                known[slot.sha256] = await self._send(slot, workspace_id, meter.for_file(id(slot), slot.media.label))

        try:
            async with anyio.create_task_group() as group:
                for slot in to_send:
                    group.start_soon(send, slot)
        except BaseExceptionGroup as failures:
            # The first upload that failed says why; `from` its own cause, which the translator reads FLORA's code in.
            leaf = _first_leaf(failures)
            raise leaf from leaf.__cause__
        fresh = {slot.sha256 for slot in to_send}
        uploads: list[InputUpload] = []
        for slot in prepared.slots:
            asset = known[slot.sha256]
            assert asset is not None
            if slot.index is None:
                args[slot.input_id] = asset.url
            else:
                args[slot.input_id][slot.index] = asset.url
            reused = slot.sha256 not in fresh or distinct[slot.sha256] is not slot
            if slot.sha256 not in fresh:
                log.info("input %s: %s (%s) is already asset %s; not uploaded again", slot.input_id,
                         slot.media.label, describe_size(slot.media.size), asset.asset_id)
            uploads.append(InputUpload(input=slot.input_id, source=slot.media.label, size_bytes=slot.media.size,
                                       content_type=asset.content_type, asset_id=asset.asset_id, url=asset.url,
                                       reused=reused))
        return args, uploads

    async def _still_there(self, workspace_id: str, sha256: str) -> RememberedAsset | None:
        """The remembered asset of these bytes, if FLORA still has it ready: a run given a deleted asset's URL would
        fail after it was paid for, so one read is worth it."""
        remembered = await self.memo.asset_get(self.account, workspace_id, sha256)
        if remembered is None:
            return None
        try:
            asset = await self.assets.get(remembered.asset_id)
        except NotFoundError:
            asset = None
        if asset is None or not asset.is_ready:
            log.info("asset %s is gone from FLORA; its file is uploaded again", remembered.asset_id)
            await self.memo.asset_forget(self.account, workspace_id, sha256)
            return None
        return RememberedAsset(asset.asset_id, asset.url or remembered.url, remembered.size_bytes,
                               remembered.content_type)

    async def _send(self, slot: _Slot, workspace_id: str,
                    progress: Callable[[int, int], Awaitable[None]] | None) -> RememberedAsset:
        media = slot.media
        source: Any = media.data if media.data is not None else media.stream
        try:
            asset = await self.assets.upload_file(source, workspace_id=workspace_id, content_type=media.content_type,
                                                  file_name=media.file_name, progress=progress)
        except OSError as exc:
            raise UploadError(f"input {slot.input_id}: {media.label} could not be read while it was uploaded: "
                              f"{exc.strerror or exc}", sent=True) from exc
        except UploadError as exc:
            raise UploadError(f"input {slot.input_id}: {media.label}: {exc.message}", asset_id=exc.asset_id,
                              status=exc.status, failure_message=exc.failure_message, sent=exc.sent) from exc
        except APIError as exc:  # the translator still reads FLORA's code and request-id from the cause
            raise UploadError(f"input {slot.input_id}: uploading {media.label} failed: {exc.message}",
                              sent=True) from exc
        assert asset.url is not None
        remembered = RememberedAsset(asset.asset_id, asset.url, media.size, asset.content_type or media.content_type)
        await self.memo.asset_put(self.account, workspace_id, slot.sha256, remembered)
        log.info("input %s: uploaded %s (%s, %s) as asset %s", slot.input_id, media.label,
                 describe_size(media.size), remembered.content_type, asset.asset_id)
        return remembered


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _hash_all(slots: list[_Slot]) -> None:
    for slot in slots:
        digest = hashlib.sha256()
        media = slot.media
        if media.data is not None:
            digest.update(media.data)
        else:
            assert media.stream is not None
            media.stream.seek(0)
            while chunk := media.stream.read(_HASH_CHUNK):
                digest.update(chunk)
            media.stream.seek(0)
        slot.sha256 = digest.hexdigest()


class _Meter:
    """Adds up the bytes sent by concurrent uploads into one rising count."""

    def __init__(self, callback: UploadProgress | None, total: int) -> None:
        self.callback = callback
        self.total = total
        self.sent: dict[int, int] = {}

    def for_file(self, key: int, label: str) -> Callable[[int, int], Awaitable[None]] | None:
        if self.callback is None:
            return None

        async def report(sent: int, size: int) -> None:
            self.sent[key] = sent
            assert self.callback is not None
            done = sum(self.sent.values())
            result = self.callback(done, self.total, f"uploading {label}: {describe_size(sent)} of "
                                                     f"{describe_size(size)}")
            if inspect.isawaitable(result):
                await result

        return report
