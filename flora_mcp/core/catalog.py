"""Techniques -> tool definitions: stable names, flat JSON Schemas, descriptions with the price, and validation.

Every client accepts these schemas: `type: object`, one string property per input (an array of strings for inputs
that allow several values), no `$ref`, no `anyOf`, `additionalProperties: false`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from flora_mcp.api.client import SCHEMA_FETCH_CONCURRENCY, FloraClient
from flora_mcp.api.errors import APIResponseError, NotFoundError, PermissionDeniedError
from flora_mcp.api.models import Technique, TechniqueIO
from flora_mcp.core.arguments import argument_errors, schema_validator
from flora_mcp.core.results import OUTPUT_SCHEMA, FieldError, format_usd
from flora_mcp.core.tool_names import GET_RUN, RESERVED_NAMES

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

__all__ = [
    "MAX_DESCRIPTION",
    "MAX_MULTIPLE_VALUES",
    "MAX_TOOL_NAME",
    "Catalog",
    "TechniqueTool",
    "format_usd",
    "load_techniques",
    "technique_filter",
    "tool_name_base",
]

log = logging.getLogger("flora_mcp.core.catalog")

MAX_TOOL_NAME = 48
HASH_LEN = 6
MAX_MULTIPLE_VALUES = 10
# The media a URL input carries, and how descriptions name them; FLORA spells the type imageUrl or image_url.
_KIND = {"image": "an image", "video": "a video", "audio": "an audio file", "document": "a document"}
URL_TYPES = frozenset(spelling for kind in _KIND for spelling in (f"{kind}Url", f"{kind}_url"))
URL_SCHEMES = frozenset({"http", "https", "data", "file"})
_INVALID = re.compile(r"[^a-z0-9_-]+")



def tool_name_base(technique: Technique) -> str:
    """The name before uniqueness: from the slug, else the name, else the id; `[a-z0-9_-]`, a letter first."""
    for source in (technique.slug, technique.name, technique.technique_id):
        if not source:
            continue
        name = _INVALID.sub("-", source.strip().lower()).strip("-_")
        name = re.sub(r"-{2,}", "-", name)
        if name and not name[0].isalpha():
            name = f"t-{name}"
        if name:
            return name
    return "technique"


def _short_hash(technique: Technique, length: int = HASH_LEN) -> str:
    return hashlib.sha256(technique.technique_id.encode()).hexdigest()[:length]


def _with_suffix(base: str, technique: Technique, length: int = HASH_LEN) -> str:
    return f"{base[: MAX_TOOL_NAME - length - 1].rstrip('-_')}-{_short_hash(technique, length)}"


def assign_names(techniques: Sequence[Technique]) -> dict[str, Technique]:
    """Unique, stable tool names for these techniques.

    A name too long is cut and given a hash of the technique id; names that collide all get one, except a valid slug
    used as it is, so adding a technique never renames an existing slug's tool.
    """
    bases = {t.technique_id: tool_name_base(t) for t in techniques}
    counts: dict[str, int] = {}
    for base in bases.values():
        counts[base] = counts.get(base, 0) + 1
    names: dict[str, Technique] = {}
    # Exact slugs first, so that they keep their plain name on collision.
    ordered = sorted(techniques, key=lambda t: (bases[t.technique_id] != t.slug, t.technique_id))
    for technique in ordered:
        base = bases[technique.technique_id]
        exact = base == technique.slug and len(base) <= MAX_TOOL_NAME
        if len(base) > MAX_TOOL_NAME or base in RESERVED_NAMES or (counts[base] > 1 and not exact) or base in names:
            name = _with_suffix(base, technique)
        else:
            name = base
        length = HASH_LEN
        while name in names or name in RESERVED_NAMES:
            length += 2
            name = _with_suffix(base, technique, length)
        names[name] = technique
    return names


def technique_filter(spec: str | None) -> Callable[[Technique], bool]:
    """A predicate from `cctv-*,!*-beta`: included by any positive glob (all when none), then excluded by any `!glob`.

    Globs match the slug, the technique id or the tool name base, case-insensitively.
    """
    patterns = [p.strip().lower() for p in (spec or "").split(",") if p.strip()]
    include = [p for p in patterns if not p.startswith("!")]
    exclude = [p[1:] for p in patterns if p.startswith("!")]

    def keys(t: Technique) -> list[str]:
        return [k.lower() for k in (t.slug, t.technique_id, tool_name_base(t)) if k]

    def accept(t: Technique) -> bool:
        ks = keys(t)
        if include and not any(fnmatch.fnmatchcase(k, p) for k in ks for p in include):
            return False
        return not any(fnmatch.fnmatchcase(k, p) for k in ks for p in exclude)

    return accept


def _input_description(io: TechniqueIO) -> str:
    parts = [io.name if io.name != io.id else io.id]
    if io.description:
        parts.append(io.description.rstrip("."))
    if io.type in URL_TYPES:
        kind = _KIND.get(io.type.replace("_url", "").replace("Url", ""), "a file")
        # A path is not a URI: no `format: uri` either, which would make a client refuse one.
        path = "a local file path (uploaded for you; not on a hosted server)"
        sources = f"{path}, or a FLORA element id" if io.accepts_element else f"or {path}"
        parts.append(f"{kind[0].upper()}{kind[1:]}: an https URL, a data: URL, {sources}")
    if io.specified_aspect_ratio:
        parts.append(f"Required aspect ratio {io.specified_aspect_ratio}")
    if io.specified_duration is not None:
        parts.append(f"Required duration {io.specified_duration:g} s")
    if io.allow_multiple:
        parts.append(f"A list of up to {MAX_MULTIPLE_VALUES} values runs once per value")
    return ". ".join(parts) + "."


def input_property(io: TechniqueIO) -> dict[str, Any]:
    """The JSON Schema of one input."""
    item: dict[str, Any] = {"type": "string", "minLength": 1}
    description = _input_description(io)
    if io.allow_multiple:
        return {"type": "array", "items": item, "minItems": 1, "maxItems": MAX_MULTIPLE_VALUES,
                "description": description}
    return {**item, "description": description}


def input_schema(technique: Technique) -> dict[str, Any]:
    inputs = technique.inputs or []
    return {
        "type": "object",
        "properties": {io.id: input_property(io) for io in inputs},
        "required": [io.id for io in inputs if not io.optional],
        "additionalProperties": False,
    }


MAX_DESCRIPTION = 2000
"""Longest tool description: Claude Code cuts them at 2,048 characters, and the price must never be what is cut."""
_MAX_LINE = 240


def tool_description(technique: Technique) -> str:
    """What the technique does, its inputs, outputs and price, within MAX_DESCRIPTION characters.

    The price and the run_id line are always there; when FLORA's texts are too long, the technique's own description
    is cut first (to what is left, and no shorter than a line), then inputs are left out from the last (each input
    keeps its description in the input schema).
    """
    tail = [f"Costs {format_usd(technique.run_cost)} per run.",
            f"Waits for the run and returns output URLs; a long run returns a run_id for {GET_RUN}."]
    outputs = ", ".join(f"{o.name or o.id} ({o.type})" for o in technique.outputs)
    if outputs:
        tail.insert(0, _cut(f"Outputs: {outputs}.", _MAX_LINE))
    inputs = [_cut(f"- {io.id} ({'optional' if io.optional else 'required'}): {_input_description(io)}", _MAX_LINE)
              for io in technique.inputs or []]
    head = (technique.description or technique.name or technique.technique_id).strip()

    def text(shown: list[str], about: str) -> str:
        left_out = len(inputs) - len(shown)
        more = [f"- and {left_out} more inputs: see the input schema."] if left_out else []
        return "\n".join([about, *(["Inputs:", *shown, *more] if inputs else []), *tail])

    shown = list(inputs)
    while True:
        room = MAX_DESCRIPTION - len(text(shown, ""))
        if room >= min(len(head), _MAX_LINE) or not shown:
            return text(shown, _cut(head, max(room, 1)))
        shown.pop()


def _cut(text: str, limit: int) -> str:
    """`text` within `limit` characters, cut at a word and marked with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,.;:") + "\u2026"


@dataclass
class TechniqueTool:
    """One technique as a tool: its name, its MCP definition and its argument validator."""

    name: str
    technique: Technique
    definition: dict[str, Any]
    _validator: Draft202012Validator | None = field(default=None, repr=False)

    @classmethod
    def build(cls, name: str, technique: Technique) -> TechniqueTool:
        definition = {
            "name": name,
            "title": technique.name or name,
            "description": tool_description(technique),
            "inputSchema": input_schema(technique),
            "outputSchema": OUTPUT_SCHEMA,
            "annotations": {
                "title": technique.name or name,
                "readOnlyHint": False,
                "destructiveHint": False,
                "idempotentHint": False,
                "openWorldHint": True,
            },
            # No nulls: the 2026-07-28 wire drops them from `_meta`, and both eras must list the same tool.
            "_meta": {key: value for key, value in (("technique_id", technique.technique_id),
                      ("slug", technique.slug), ("run_cost", technique.run_cost)) if value is not None},
        }
        return cls(name=name, technique=technique, definition=definition)

    @property
    def input_schema(self) -> dict[str, Any]:
        return self.definition["inputSchema"]  # type: ignore[no-any-return]

    def normalize(self, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
        """Arguments as the schema expects them: a lone value for a multiple-value input becomes a list."""
        args = dict(arguments or {})
        for io in self.technique.inputs or []:
            if io.allow_multiple and isinstance(args.get(io.id), str):
                args[io.id] = [args[io.id]]
        return args

    def validate(self, arguments: Mapping[str, Any]) -> list[FieldError]:
        """Every problem with these (normalized) arguments; empty when they may be sent to FLORA."""
        if self._validator is None:
            self._validator = schema_validator(self.input_schema)
        errors = argument_errors(self._validator, arguments)
        for io in self.technique.inputs or []:
            if io.type not in URL_TYPES or io.id not in arguments:
                continue
            values = arguments[io.id] if isinstance(arguments[io.id], list) else [arguments[io.id]]
            for value in values:
                if isinstance(value, str) and value and not _is_url_or_path(value) and not io.accepts_element:
                    message = f"must be an https URL, a data: URL or a local file path, got {value!r:.80}"
                    errors.append(FieldError(field=io.id, message=message))
        return sorted({(e.field, e.message): e for e in errors}.values(), key=lambda e: e.field)


def _is_url_or_path(value: str) -> bool:
    """A URL flora-mcp can pass on or read (http(s) with a host, data:, file:), or no URL at all: a path."""
    parts = urlsplit(value)
    if parts.scheme in ("data", "file"):
        return True
    if parts.scheme in URL_SCHEMES:
        return bool(parts.netloc)
    return "://" not in value


@dataclass
class Catalog:
    """The techniques the server offers, by tool name."""

    tools: dict[str, TechniqueTool]

    @classmethod
    def from_techniques(cls, techniques: Iterable[Technique]) -> Catalog:
        named = assign_names(list(techniques))
        return cls(tools={name: TechniqueTool.build(name, t) for name, t in sorted(named.items())})

    def __len__(self) -> int:
        return len(self.tools)

    def get(self, name: str) -> TechniqueTool | None:
        return self.tools.get(name)

    def find(self, ref: str) -> TechniqueTool | None:
        """A technique by tool name, slug, technique id or name (case-insensitive)."""
        if ref in self.tools:
            return self.tools[ref]
        wanted = ref.strip().lower()
        if not wanted:  # else it would be the first technique without a slug or a name
            return None
        for tool in self.tools.values():
            t = tool.technique
            if wanted in {tool.name, (t.slug or "").lower(), t.technique_id.lower(), (t.name or "").lower()}:
                return tool
        return None

    def definitions(self) -> list[dict[str, Any]]:
        return [tool.definition for tool in self.tools.values()]


async def load_techniques(
    client: FloraClient,
    *,
    query: str | None = None,
    concurrency: int = SCHEMA_FETCH_CONCURRENCY,
    accept: Callable[[Technique], bool] | None = None,
    on_listed: Callable[[list[Technique]], Awaitable[None]] | None = None,
    prefetch: bool = False,
) -> list[Technique]:
    """Every technique with its full schema: all list pages, then summary items' schemas fetched concurrently.

    `on_listed` is awaited with the accepted list items (some of them summaries) before any schema is fetched: how
    many techniques there are is known then, and that is all the compact mode's tool list needs. With `prefetch`
    (when every schema is needed anyway: FLORA_TOOLS_MODE=full), a page's schemas are asked for as soon as the page
    comes, while the next pages are listed; what is kept is as without it (a schema fetched for a list item that a
    later page replaced is fetched again, and a failed listing is the error, whatever the schemas did meanwhile).
    """
    limiter = anyio.Semaphore(concurrency, fast_acquire=True)

    async def fetch(summary: Technique) -> Technique | None:
        async with limiter:
            try:
                detail = await client.get_technique(summary.technique_id if not summary.slug else summary.slug)
            except (NotFoundError, PermissionDeniedError, APIResponseError) as exc:
                # One technique gone or unreadable since it was listed: serve the others.
                log.warning("leaving out technique %s: %s", summary.slug or summary.technique_id, exc.message)
                return None
        # The list item's slug and name win where the detail leaves them out.
        update = {k: v for k, v in (("slug", summary.slug), ("name", summary.name)) if v and not getattr(detail, k)}
        return detail.model_copy(update=update) if update else detail

    early: dict[str, _Prefetch] = {}
    try:
        async with anyio.create_task_group() as prefetching:

            def on_page(page: list[Technique]) -> None:
                for item in page:
                    if item.is_summary and item.technique_id not in early and (accept is None or accept(item)):
                        early[item.technique_id] = ahead = _Prefetch(item)
                        prefetching.start_soon(ahead.run, fetch)

            listed = list({t.technique_id: t for t in await client.list_techniques(
                query=query, on_page=on_page if prefetch else None)}.values())
            if accept is not None:
                listed = [t for t in listed if accept(t)]
            if on_listed is not None:
                await on_listed(listed)
            full: dict[int, Technique] = {}
            prefetched: list[tuple[int, _Prefetch]] = []

            async def keep(index: int, summary: Technique) -> None:
                detail = await fetch(summary)
                if detail is not None:
                    full[index] = detail

            async with anyio.create_task_group() as tg:
                for index, technique in enumerate(listed):
                    ahead = early.get(technique.technique_id)
                    if not technique.is_summary:
                        full[index] = technique
                    elif ahead is not None and ahead.summary == technique:
                        prefetched.append((index, ahead))  # under way already: no task of its own to wait for it
                    else:
                        tg.start_soon(keep, index, technique)
                for index, ahead in prefetched:
                    detail = await ahead.result()
                    if detail is not None:
                        full[index] = detail
            prefetching.cancel_scope.cancel()  # left: the schemas of items a later page replaced
    except BaseExceptionGroup as group:
        # A failed listing, or one failed fetch that cancelled the others: that one, not a group of one.
        raise _first_leaf(group) from None
    return [full[i] for i in range(len(listed)) if i in full]


class _Prefetch:
    """One list item's schema, asked for before the listing ended: its outcome, an error kept until asked for."""

    def __init__(self, summary: Technique) -> None:
        self.summary = summary
        self._done = anyio.Event()
        self._detail: Technique | None = None
        self._error: BaseException | None = None

    async def run(self, fetch: Callable[[Technique], Awaitable[Technique | None]]) -> None:
        try:
            self._detail = await fetch(self.summary)
        except Exception as exc:
            self._error = exc
        finally:
            self._done.set()

    async def result(self) -> Technique | None:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._detail


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
