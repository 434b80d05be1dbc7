"""The heap a server process keeps for its whole life, set aside from the garbage collector once start-up is over.

What is alive when the catalog has loaded (the MCP SDK's modules and pydantic models, jsonschema, the catalog) lives
as long as the process, and CPython's full collection walks all of it: about 100 ms on these machines, a pause that
every call in flight waits out (with 100 calls in flight it was the benchmark's p99). `gc.freeze()` moves it into a
permanent generation that collections skip. What is made later is collected as before, and a frozen object that is
no longer referenced is still freed by its reference count; only a cycle among frozen objects would stay.

Before that, the stdio server starts with collection paused (`pause_collection`): start-up makes mostly what the
process keeps, and every automatic collection walks all of it made so far, over and over while the SDK is imported
and the catalog built (full mode, 1,000 techniques, spawn -> tools/list: 1.73-1.75 x the SDK's import floor with
those collections, 1.46-1.56 x without, in the same rounds). The one collection that frees what start-up left as
cycles runs `FREEZE_DELAY` after the catalog has loaded, once the first answers are out, and the heap is frozen
after it: nothing start-up threw away is kept for the process's life.
"""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from flora_mcp.core.toolkit import Toolkit

__all__ = ["FREEZE_DELAY", "freeze_heap", "freeze_once_loaded", "pause_collection", "resume_collection"]

log = logging.getLogger(__name__)

FREEZE_DELAY = 1.0
"""Seconds from the catalog's load to the collection and freeze: a client's tools/list is answered before that pause
(about 100 ms of walking the heap)."""


def pause_collection() -> None:
    """No automatic garbage collection until `freeze_heap()` (or `resume_collection()`): for a server starting up."""
    gc.disable()


def resume_collection() -> None:
    """Collection back on, if start-up ended without `freeze_heap()` (a server that stopped before its catalog came)."""
    gc.enable()


def freeze_heap() -> None:
    """Move every object alive now out of the garbage collector's way, for the rest of the process; with collection
    paused, what start-up left as cycles is collected first, and collection resumes."""
    paused = not gc.isenabled()
    collected = gc.collect() if paused else 0
    gc.freeze()
    gc.enable()
    if log.isEnabledFor(logging.DEBUG):  # counting walks every one of them: 10 ms
        log.debug("%d objects set aside from garbage collection (%s)", gc.get_freeze_count(),
                  f"{collected} left from start-up collected first, collection resumed" if paused else "collection on")


async def freeze_once_loaded(toolkit: Toolkit, delay: float = FREEZE_DELAY) -> None:
    """`freeze_heap()` `delay` seconds after `toolkit`'s catalog has loaded (never, if it cannot load: the process is
    ending)."""
    try:
        await toolkit.wait_for_catalog()
    except Exception:
        return
    await anyio.sleep(delay)
    freeze_heap()
