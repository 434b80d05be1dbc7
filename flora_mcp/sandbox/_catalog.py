"""Technique definitions and the catalog that lists, filters, pages and finds them.

A technique is its FLORA schema (slug, name, inputs, outputs, run_cost) plus a `work` function that turns fetched
input values into output files. Ids derive from the slug (or the name when there is none), so they survive restarts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from flora_mcp.sandbox._errors import FieldError, SandboxError

__all__ = [
    "URL_TYPES",
    "Catalog",
    "MediaType",
    "Port",
    "Product",
    "Technique",
    "TechniqueFailure",
    "Work",
    "canonical_type",
    "technique_id_for",
]

MediaType = Literal["imageUrl", "videoUrl", "audioUrl", "text", "documentUrl"]
URL_TYPES: frozenset[str] = frozenset({"imageUrl", "videoUrl", "audioUrl", "documentUrl"})
_TYPE_ALIASES = {
    "image_url": "imageUrl",
    "video_url": "videoUrl",
    "audio_url": "audioUrl",
    "document_url": "documentUrl",
}


def canonical_type(name: str) -> str:
    """`image_url` -> `imageUrl`; the guide accepts both spellings."""
    return _TYPE_ALIASES.get(name, name)


def technique_id_for(key: str) -> str:
    """A stable `tech_` id derived from a slug (or name)."""
    return "tech_" + hashlib.sha1(key.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Port:
    """One input or output of a technique schema."""

    id: str
    name: str
    type: MediaType
    description: str | None = None
    optional: bool = False
    specified_aspect_ratio: str | None = None
    specified_duration: float | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type}
        if self.description is not None:
            data["description"] = self.description
        if self.optional:
            data["optional"] = True
        if self.specified_aspect_ratio is not None:
            data["specified_aspect_ratio"] = self.specified_aspect_ratio
        if self.specified_duration is not None:
            data["specified_duration"] = self.specified_duration
        return data


@dataclass(frozen=True)
class Product:
    """One output file a technique made."""

    output_id: str
    type: MediaType
    data: bytes
    extension: str


class TechniqueFailure(Exception):
    """A technique could not finish; the run fails with this error code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


InputValue = str | bytes
"""Text inputs arrive as `str`, URL inputs as the fetched `bytes`."""
Work = Callable[[Mapping[str, InputValue]], list[Product]]
Validator = Callable[[Mapping[str, str]], list[FieldError]]


@dataclass(frozen=True)
class Technique:
    """A runnable technique: FLORA's schema plus the local work that produces its outputs."""

    slug: str | None
    name: str
    description: str
    run_cost: float
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    work: Work = field(compare=False)
    validate: Validator | None = field(default=None, compare=False)
    full_in_list: bool = True
    """Whether the list endpoint shows the full schema (else only id, slug, name)."""
    estimated_seconds: float = 1.0

    @property
    def technique_id(self) -> str:
        return technique_id_for(self.slug or self.name)

    def answers_to(self, ref: str) -> bool:
        return ref in (self.slug, self.technique_id)

    def input(self, input_id: str) -> Port | None:
        return next((port for port in self.inputs if port.id == input_id), None)

    def matches(self, query: str) -> bool:
        needle = query.casefold()
        return any(needle in text.casefold() for text in (self.slug or "", self.name, self.description))

    def summary_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"technique_id": self.technique_id}
        if self.slug is not None:
            data["slug"] = self.slug
        data["name"] = self.name
        return data

    def full_json(self) -> dict[str, Any]:
        data = self.summary_json()
        data["description"] = self.description
        data["run_cost"] = self.run_cost
        data["inputs"] = [port.to_json() for port in self.inputs]
        data["outputs"] = [port.to_json() for port in self.outputs]
        return data


def encode_cursor(prefix: str, position: int) -> str:
    return base64.urlsafe_b64encode(f"{prefix}:{position}".encode()).decode().rstrip("=")


def decode_cursor(prefix: str, cursor: str) -> int:
    """The position encoded in an opaque cursor; a 422 field error when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, _, number = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        position = int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        position = -1
        kind = ""
    if kind != prefix or position < 0:
        raise SandboxError.validation([FieldError("cursor", "Invalid cursor")], status=400)
    return position


@dataclass(frozen=True)
class Page:
    """One page of list results."""

    items: list[Technique]
    next_cursor: str | None


class Catalog:
    """The techniques a sandbox offers, in a fixed order."""

    def __init__(self, techniques: Iterable[Technique]) -> None:
        self.techniques: tuple[Technique, ...] = tuple(techniques)
        self._by_ref: dict[str, Technique] = {}
        for technique in self.techniques:
            for ref in (technique.slug, technique.technique_id):
                if ref is None:
                    continue
                if ref in self._by_ref:
                    raise ValueError(f"duplicate technique reference {ref!r}")
                self._by_ref[ref] = technique

    def find(self, ref: str) -> Technique | None:
        """The technique with this slug or technique id."""
        return self._by_ref.get(ref)

    def visible(self, allow: Sequence[str] | None) -> list[Technique]:
        if allow is None:
            return list(self.techniques)
        return [t for t in self.techniques if t.slug in allow or t.technique_id in allow]

    def page(self, allow: Sequence[str] | None, query: str | None, cursor: str | None, limit: int) -> Page:
        items = self.visible(allow)
        if query:
            items = [t for t in items if t.matches(query)]
        start = decode_cursor("t", cursor) if cursor else 0
        end = start + limit
        next_cursor = encode_cursor("t", end) if end < len(items) else None
        return Page(items[start:end], next_cursor)
