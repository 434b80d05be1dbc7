"""The technique catalog on disk, so that a restart serves tools at once and refreshes them in the background.

One JSON file per catalog view: base URL, API key, `FLORA_QUERY` and `FLORA_TECHNIQUES` together name it through a hash,
so one key never reads another's techniques and the key itself is in no file and no file name. The file holds the full
technique models (not the tool definitions): tools are rebuilt from them by the same code, so names stay stable.
Writes are atomic (a temporary file, then a rename); a file that cannot be read is logged and ignored, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from flora_mcp.api.models import Technique

__all__ = ["CACHE_FORMAT", "CachedCatalog", "CatalogCache", "default_cache_dir"]

log = logging.getLogger("flora_mcp.core.cache")

CACHE_FORMAT = 1
"""Bumped when the file layout changes; files of another format are ignored."""


def default_cache_dir() -> Path:
    """`<user cache dir>/flora-mcp/catalogs`."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("flora-mcp", appauthor=False)) / "catalogs"


@dataclass(frozen=True)
class CachedCatalog:
    """Techniques read from the cache, and when they were fetched from FLORA."""

    techniques: list[Technique]
    saved_at: float
    """Seconds since the epoch."""

    def age(self, now: float | None = None) -> float:
        """Seconds since the techniques were fetched (never negative, even if the clock went back)."""
        return max((time.time() if now is None else now) - self.saved_at, 0.0)


class CatalogCache:
    """The cache file of one catalog view.

    Args:
        directory: the folder of cache files (created on the first save).
        base_url: FLORA's API base URL.
        api_key: the key whose catalog this is; only a hash of it is used.
        query: `FLORA_QUERY`, which changes what FLORA lists.
        techniques: `FLORA_TECHNIQUES`, which changes which techniques are kept.
    """

    def __init__(self, directory: Path, *, base_url: str, api_key: str, query: str | None = None,
                 techniques: str | None = None) -> None:
        view = "\0".join([base_url.rstrip("/"), api_key, query or "", techniques or ""])
        self.base_url = base_url.rstrip("/")
        self.path = directory / f"catalog-{hashlib.sha256(view.encode()).hexdigest()[:32]}.json"

    def load(self) -> CachedCatalog | None:
        """The cached techniques, or None when there is no usable file (a bad one is logged)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read the catalog cache %s: %s", self.path, exc)
            return None
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or body.get("format") != CACHE_FORMAT:
                raise ValueError(f"not a format-{CACHE_FORMAT} catalog cache")
            if body.get("base_url") != self.base_url:
                raise ValueError("written for another base URL")
            saved_at = body["saved_at"]
            if not isinstance(saved_at, int | float) or isinstance(saved_at, bool):
                raise ValueError("saved_at is not a number")
            items = body["techniques"]
            if not isinstance(items, list):
                raise ValueError("techniques is not a list")
            techniques = [Technique.model_validate(item) for item in items]
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            # ValidationError is a ValueError; named for the reader. A bad cache costs one network load, no more.
            log.warning("ignoring the unreadable catalog cache %s: %s", self.path, str(exc).splitlines()[0])
            return None
        if any(t.is_summary for t in techniques):
            log.warning("ignoring the catalog cache %s: it holds techniques without schemas", self.path)
            return None
        return CachedCatalog(techniques=techniques, saved_at=float(saved_at))

    def save(self, techniques: list[Technique], *, now: float | None = None) -> None:
        """Replace the cache file with these techniques, atomically; readers see the old file or the new one."""
        body: dict[str, Any] = {
            "format": CACHE_FORMAT,
            "base_url": self.base_url,
            "saved_at": time.time() if now is None else now,
            "techniques": [t.model_dump(mode="json") for t in techniques],
        }
        data = json.dumps(body, separators=(",", ":")).encode()
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".catalog-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
