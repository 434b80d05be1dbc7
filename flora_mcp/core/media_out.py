"""Media out: a completed run's outputs saved as files, and the links a client can render.

`save_outputs` downloads each output through the fetch guard (`previews.open_output`: checked and pinned addresses,
redirects re-checked), streaming with a byte cap and a time cap, into `{tool}-{run_id}-{output_id}.{ext}` (the
extension from the content type the server sent) under the output folder. A file is written beside its target under
a hidden temporary name, flushed to disk, then linked into place, which fails rather than replace a file already
there; the next free name (`-1`, `-2`, ...) is taken instead. Nothing is ever overwritten, and a failed download
leaves nothing behind. `resource_links` gives each output as an MCP `resource_link`: its URL, and its local file as a
`file://` link once saved.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

from flora_mcp._fetch_guard import FetchPolicy
from flora_mcp._media import EXTENSIONS, canonical_media_type
from flora_mcp.config import Settings
from flora_mcp.core.previews import FetchRefused, open_output
from flora_mcp.core.results import OutputFile, ToolResult

if TYPE_CHECKING:
    import mcp.types as types

__all__ = ["DOWNLOAD_CONCURRENCY", "DOWNLOAD_TIMEOUT", "MAX_OUTPUT_BYTES", "OutputSaver", "Saved", "output_file_name",
           "resource_links", "result_links", "save_output", "save_outputs"]

log = logging.getLogger("flora_mcp.core.media_out")

MAX_OUTPUT_BYTES = 2 * 1024**3
"""The largest output file saved; a video can be large, but not without bound."""
DOWNLOAD_TIMEOUT = 300.0
"""Seconds for one whole output download."""
DOWNLOAD_CONCURRENCY = 4
_CHUNK = 256 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MORE_EXTENSIONS = {"text/plain": "txt", "application/json": "json", "image/svg+xml": "svg", "audio/mp4": "m4a",
                    "image/jpeg": "jpg", "text/html": "html", "application/octet-stream": "bin"}


@dataclass(frozen=True)
class Saved:
    """One output saved as a local file."""

    output_id: str
    run_id: str | None
    path: Path
    content_type: str
    size_bytes: int


def _extension(content_type: str, url: str) -> str:
    canonical = canonical_media_type(content_type) or ""
    known = EXTENSIONS.get(canonical) or _MORE_EXTENSIONS.get(canonical)
    if known:
        return known
    guessed = mimetypes.guess_extension(canonical) if canonical else None
    if guessed:
        return guessed.lstrip(".")
    suffix = PurePosixPath(urlsplit(url).path).suffix.lstrip(".").lower()
    return suffix if suffix.isalnum() and len(suffix) <= 5 else "bin"


def output_file_name(tool: str, run_id: str | None, output_id: str, content_type: str, url: str) -> str:
    """`{tool}-{run_id}-{output_id}.{ext}`, made safe for any file system."""
    stem = "-".join(part for part in (tool, run_id, output_id) if part)
    return f"{_UNSAFE.sub('_', stem).strip('._') or 'output'}.{_extension(content_type, url)}"


def _place(partial: Path, wanted: Path) -> Path:
    """Give the finished file its name without replacing anything there: the next free name instead."""
    candidate, number = wanted, 1
    while True:
        try:
            os.link(partial, candidate)  # fails when the name is taken: no check-then-write race
        except FileExistsError:
            candidate = wanted.with_name(f"{wanted.stem}-{number}{wanted.suffix}")
            number += 1
            continue
        except OSError:  # a file system without hard links: rename, after a check
            if candidate.exists():
                candidate = wanted.with_name(f"{wanted.stem}-{number}{wanted.suffix}")
                number += 1
                continue
            os.replace(partial, candidate)
            return candidate
        partial.unlink()
        return candidate


def _finish(file: Any) -> None:
    file.flush()
    os.fsync(file.fileno())


async def save_output(output: OutputFile, directory: Path, *, tool: str, run_id: str | None, flora_base_url: str,
                      policy: FetchPolicy | None = None, max_bytes: int = MAX_OUTPUT_BYTES,
                      timeout: float = DOWNLOAD_TIMEOUT) -> Saved:
    """Download one output into `directory` (made if missing) under its own name, never overwriting a file.

    Raises:
        FetchRefused: the URL or a redirect was refused, the answer was not 200, too large, or too slow.
        OSError: the file could not be written.
    """
    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    partial = directory / f".{output.output_id}.{secrets.token_hex(6)}.part"
    try:
        with anyio.fail_after(timeout):
            async with open_output(output.url, flora_base_url=flora_base_url, policy=policy,
                                   timeout=timeout) as response:
                content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise FetchRefused(f"{int(declared)} bytes is more than the {max_bytes}-byte cap")
                size = 0
                async with await anyio.open_file(partial, "xb") as file:
                    async for chunk in response.aiter_bytes(_CHUNK):
                        size += len(chunk)
                        if size > max_bytes:
                            raise FetchRefused(f"more than the {max_bytes}-byte cap")
                        await file.write(chunk)
                    await anyio.to_thread.run_sync(_finish, file.wrapped)
        wanted = directory / output_file_name(tool, run_id, output.output_id, content_type, output.url)
        path = await anyio.to_thread.run_sync(_place, partial, wanted)
    except TimeoutError:
        raise FetchRefused(f"no complete answer within {timeout:g} s") from None
    finally:
        await anyio.Path(partial).unlink(missing_ok=True)
    log.info("output %s of run %s saved as %s (%d bytes)", output.output_id, run_id, path, size)
    return Saved(output.output_id, run_id, path, content_type, size)


async def save_outputs(runs: Sequence[tuple[str | None, Sequence[OutputFile]]], directory: Path, *, tool: str,
                       flora_base_url: str, policy: FetchPolicy | None = None,
                       max_bytes: int = MAX_OUTPUT_BYTES) -> tuple[list[Saved], list[tuple[str, str]]]:
    """Save every output of some runs (`(run_id, outputs)` pairs), a few at a time.

    Returns:
        The files saved in output order, and `(output_id, reason)` for each output that was not.
    """
    jobs = [(run_id, output) for run_id, outputs in runs for output in outputs]
    found: list[Saved | str | None] = [None] * len(jobs)
    limiter = anyio.CapacityLimiter(DOWNLOAD_CONCURRENCY)
    policy = policy or FetchPolicy.for_flora(flora_base_url)

    async def one(index: int, run_id: str | None, output: OutputFile) -> None:
        async with limiter:
            try:
                found[index] = await save_output(output, directory, tool=tool, run_id=run_id,
                                                 flora_base_url=flora_base_url, policy=policy, max_bytes=max_bytes)
            except (FetchRefused, OSError) as exc:
                log.warning("output %s of run %s not saved: %s", output.output_id, run_id, exc)
                found[index] = str(exc) or type(exc).__name__

    async with anyio.create_task_group() as group:
        for index, (run_id, output) in enumerate(jobs):
            group.start_soon(one, index, run_id, output)
    saved = [item for item in found if isinstance(item, Saved)]
    failed = [(jobs[i][1].output_id, item) for i, item in enumerate(found) if isinstance(item, str)]
    return saved, failed


def resource_links(tool: str, outputs: Sequence[OutputFile]) -> list[types.ResourceLink]:
    """Each output as a `resource_link` to its URL, and, once saved (its `path`), one to its `file://` file."""
    import mcp.types as types

    # The outputs themselves: for the person and the model alike, ahead of any preview of them.
    annotations = types.Annotations(audience=["user", "assistant"], priority=1.0)
    links: list[types.ResourceLink] = []
    for output in outputs:
        guessed = mimetypes.guess_type(urlsplit(output.url).path)[0]
        links.append(types.ResourceLink(type="resource_link", uri=output.url, name=f"{tool} {output.output_id}",
                                        mime_type=guessed, description=f"output {output.output_id} ({output.type})",
                                        annotations=annotations))
        if output.path:
            local = Path(output.path)
            size = local.stat().st_size if local.is_file() else None
            links.append(types.ResourceLink(type="resource_link", uri=local.resolve().as_uri(), name=local.name,
                                            mime_type=mimetypes.guess_type(local.name)[0], size=size,
                                            description=f"output {output.output_id}, saved on this machine",
                                            annotations=annotations))
    return links


def result_links(result: ToolResult) -> list[types.ResourceLink]:
    """The resource links of every output of a result (of each of its runs)."""
    return resource_links(result.tool, result.outputs)


class OutputSaver:
    """Saves the outputs of completed runs under FLORA_OUTPUT_DIR, each once: a run's outputs asked for again
    (`flora_get_run`) get the paths they were saved under, not a second copy."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._paths: dict[tuple[str | None, str], str] = {}

    async def save(self, result: ToolResult, tool: str) -> ToolResult:
        """The result, its saved outputs carrying their `path`; outputs that could not be saved are named in
        `next_step`. Nothing to do without FLORA_OUTPUT_DIR, or for runs that did not complete."""
        if not self.settings.output_dir or not result.outputs:
            return result
        runs = [run for run in (result.runs or [result]) if run.status == "completed"]
        todo = [(run.run_id, [o for o in run.outputs if (run.run_id, o.output_id) not in self._paths])
                for run in runs]
        directory = Path(self.settings.output_dir).expanduser()
        saved, failed = await save_outputs([pair for pair in todo if pair[1]], directory, tool=tool,
                                           flora_base_url=self.settings.base_url)
        for item in saved:
            self._paths[(item.run_id, item.output_id)] = str(item.path)
        by_url: dict[str, str] = {}
        for run in runs:
            for output in run.outputs:
                output.path = self._paths.get((run.run_id, output.output_id))
                if output.path:
                    by_url[output.url] = output.path
        for output in result.outputs:  # a multiple-value call's own list holds copies of its runs' outputs
            output.path = output.path or by_url.get(output.url)
        if failed:
            listed = "; ".join(f"{output_id}: {reason}" for output_id, reason in failed)
            note = f"Not saved to {directory}: {listed}. The URLs above still work."
            result.next_step = f"{result.next_step} {note}" if result.next_step else note
        return result
