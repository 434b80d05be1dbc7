"""Assets: their record and JSON shape, signed-upload reservations, and the check that turns bytes into a ready asset.

An asset is `pending_upload` until its bytes are in and judged, then `ready` (with a URL under `/files/assets/`) or
`failed` (with a `failure_message`). Bytes are judged by their content (`flora_mcp._media`), never by a name or a
declared type. A signed upload's bytes wait in the bucket directory, which `/files/` does not serve, until
`complete` moves them to the files directory; a reservation that expires before its bytes arrive fails the asset.
Reservations are signed with a secret of this sandbox, as a storage bucket's presigned POST policy would be.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import shutil
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from PIL import Image, UnidentifiedImageError

from flora_mcp._media import (
    IMAGE_MAX_PIXELS,
    SNIFF_BYTES,
    canonical_media_type,
    extension_for,
    media_type_for_extension,
    sniff_media_type,
)

__all__ = [
    "Asset",
    "AssetStatus",
    "AssetStore",
    "Judged",
    "Reservation",
    "UploadedVia",
    "accept_declared",
    "iso_time",
    "judge_file",
    "safe_file_name",
]

AssetStatus = Literal["pending_upload", "ready", "failed"]
UploadedVia = Literal["url", "signed_url", "direct"]
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def iso_time(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def safe_file_name(name: str | None, content_type: str | None) -> str:
    """A name fit for a URL path, whose extension matches the content."""
    stem = _UNSAFE.sub("_", (name or "").rsplit("/", 1)[-1]).strip("._") or "file"
    if content_type and media_type_for_extension(stem) != content_type:
        stem = f"{stem}.{extension_for(content_type)}"
    return stem[-120:]


@dataclass(frozen=True)
class Judged:
    """What the bytes of an upload turned out to be; `problem` says why FLORA would refuse them."""

    content_type: str | None
    size_bytes: int
    width: int | None = None
    height: int | None = None
    problem: str | None = None


def judge_file(path: Path, max_bytes: int) -> Judged:
    """Sniff a file's type from its first bytes, measure it, and read an image's size from its header."""
    size = path.stat().st_size
    if size == 0:
        return Judged(None, 0, problem="The file is empty.")
    if size > max_bytes:
        return Judged(None, size, problem=f"The file is {size} bytes, more than the {max_bytes}-byte limit.")
    with path.open("rb") as file:
        content_type = sniff_media_type(file.read(SNIFF_BYTES))
    if content_type is None:
        return Judged(None, size, problem="The file is not a media type FLORA accepts (judged by its content).")
    width = height = None
    if content_type.startswith("image/"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    width, height = image.size
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            pass  # HEIC/AVIF without a Pillow plugin: no dimensions, still an image
        if width is not None and height is not None and width * height > IMAGE_MAX_PIXELS:
            return Judged(content_type, size, width, height,
                          problem=f"The image has {width}x{height} pixels, more than {IMAGE_MAX_PIXELS}.")
    return Judged(content_type, size, width, height)


@dataclass
class Reservation:
    """One signed-upload target: the object key it lets a client write, until when, and what arrived."""

    token: str
    expires_at: float
    """Epoch seconds."""
    received: Path | None = None

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at


@dataclass(eq=False)
class Asset:
    """One asset, owned by one API key."""

    asset_id: str
    api_key: str
    workspace_id: str
    uploaded_via: UploadedVia
    name: str
    sequence: int
    upload_content_type: str | None = None
    folder: str | None = None
    project_id: str | None = None
    status: AssetStatus = "pending_upload"
    content_type: str | None = None
    size_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    path: str | None = None
    """Under the files directory, once ready."""
    failure_message: str | None = None
    created_at: float = field(default_factory=time.time)
    reservation: Reservation | None = None
    processing: bool = False
    """Bytes are in and being judged: neither complete nor retry may start again."""

    def object_key(self) -> str | None:
        return f"uploads/{self.asset_id}/{self.reservation.token}" if self.reservation else None

    def expire_if_due(self) -> None:
        """A reservation whose bytes never came fails its asset once it expires."""
        held = self.reservation
        if (self.status == "pending_upload" and held is not None and held.received is None and not self.processing
                and held.expired()):
            self.fail("The signed upload expired before the file arrived; retry the upload.")

    def fail(self, message: str) -> None:
        self.status = "failed"
        self.failure_message = message
        self.processing = False

    def become_ready(self, judged: Judged, path: str) -> None:
        self.status = "ready"
        self.content_type = judged.content_type
        self.size_bytes = judged.size_bytes
        self.width, self.height = judged.width, judged.height
        self.path = path
        self.failure_message = None
        self.processing = False

    def to_json(self, origin: str, *, listing: bool = False) -> dict[str, Any]:
        """The asset object; list items carry `created_at` as a number (ms), retrieves as ISO 8601."""
        data: dict[str, Any] = {
            "asset_id": self.asset_id,
            "status": self.status,
            "url": f"{origin}/files/{self.path}" if self.status == "ready" and self.path else None,
            "uploaded_via": self.uploaded_via,
            "workspace_id": self.workspace_id,
            "visibility": "workspace",
            "content_type": self.content_type,
            "upload_content_type": self.upload_content_type,
            "size_bytes": self.size_bytes,
            "width": self.width,
            "height": self.height,
            "name": self.name,
            "description": None,
            "created_at": int(self.created_at * 1000) if listing else iso_time(self.created_at),
        }
        if self.project_id is not None:
            data["project_id"] = self.project_id
        if self.folder is not None:
            data["folder"] = self.folder
        if self.failure_message is not None:
            data["failure_message"] = self.failure_message
        return data


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class AssetStore:
    """Every asset of one sandbox, the bucket directory their signed uploads land in, and the signing secret."""

    def __init__(self) -> None:
        self.assets: dict[str, Asset] = {}
        self.bucket_dir: Path | None = None
        self._secret = secrets.token_bytes(32)

    def add(self, asset: Asset) -> Asset:
        self.assets[asset.asset_id] = asset
        return asset

    def new_id(self) -> str:
        return "ast_" + secrets.token_hex(8)

    def next_sequence(self) -> int:
        return len(self.assets) + 1

    def owned(self, api_key: str, asset_id: str) -> Asset | None:
        """The key's own asset; another key's is not found, as FLORA answers 404 for missing and inaccessible."""
        asset = self.assets.get(asset_id)
        if asset is None or asset.api_key != api_key:
            return None
        asset.expire_if_due()
        return asset

    def reserve(self, asset: Asset, ttl: float) -> Reservation:
        """A fresh upload target for a signed asset; an earlier one stops working."""
        asset.reservation = Reservation(secrets.token_hex(12), time.time() + ttl)
        asset.status = "pending_upload"
        asset.failure_message = None
        return asset.reservation

    # The presigned target ------------------------------------------------------------------------------------------

    def policy_fields(self, asset: Asset, max_bytes: int) -> dict[str, str]:
        """The form fields of a presigned POST: what the bucket checks before it takes the file."""
        key = asset.object_key()
        assert asset.reservation is not None and key is not None
        policy: dict[str, Any] = {
            "key": key,
            "expiration": asset.reservation.expires_at,
            "content_length_range": [1, max_bytes],
        }
        encoded = _b64(json.dumps(policy, sort_keys=True).encode())
        fields = {"key": key, "policy": encoded, "x-sandbox-signature": self._sign(encoded)}
        if asset.upload_content_type:
            fields["Content-Type"] = asset.upload_content_type
        return fields

    def put_signature(self, object_key: str, expires_at: float) -> str:
        return self._sign(f"PUT\n{object_key}\n{expires_at!r}")

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def verify_policy(self, fields: dict[str, str]) -> tuple[Asset, dict[str, Any]] | str:
        """The asset a presigned POST writes and its policy, or why the bucket refuses it (S3's words)."""
        encoded, signature = fields.get("policy", ""), fields.get("x-sandbox-signature", "")
        if not encoded or not hmac.compare_digest(self._sign(encoded), signature):
            return "SignatureDoesNotMatch"
        try:
            policy = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        except (ValueError, UnicodeDecodeError):
            return "InvalidPolicyDocument"
        if fields.get("key") != policy.get("key"):
            return "AccessDenied: Invalid according to Policy: Policy Condition failed: key"
        if time.time() >= float(policy.get("expiration", 0)):
            return "AccessDenied: Invalid according to Policy: Policy expired."
        found = self.by_object_key(str(policy.get("key")))
        if found is None:
            return "AccessDenied: The upload target was replaced or withdrawn."
        return found, policy

    def by_object_key(self, object_key: str) -> Asset | None:
        _, asset_id, _ = (object_key.split("/") + ["", "", ""])[:3]
        asset = self.assets.get(asset_id)
        return asset if asset is not None and asset.object_key() == object_key else None

    def receive(self, asset: Asset, source: Path) -> None:
        """Keep an uploaded file for `complete`; a second upload to the same target replaces the first."""
        assert asset.reservation is not None and self.bucket_dir is not None
        target = self.bucket_dir / asset.asset_id / asset.reservation.token
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)
        asset.reservation.received = target


def accept_declared(value: Any) -> str | None:
    """A declared content type as FLORA would record it (`upload_content_type`)."""
    return canonical_media_type(value) if isinstance(value, str) else None
