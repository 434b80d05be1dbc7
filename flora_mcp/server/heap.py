"""The heap a server process keeps for its whole life, set aside from the garbage collector once start-up is over.

What is alive when the catalog has loaded (the MCP SDK's modules and pydantic models, jsonschema, the catalog) lives
as long as the process, and CPython's full collection walks all of it: about 100 ms on these machines, a pause that
every call in flight waits out (with 100 calls in flight it was the benchmark's p99). `gc.freeze()` moves it into a
permanent generation that collections skip. What is made later is collected as before, and a frozen object that is
no longer referenced is still freed by its reference count; only a cycle among frozen objects would stay.
"""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flora_mcp.core.toolkit import Toolkit

__all__ = ["freeze_heap", "freeze_once_loaded"]

log = logging.getLogger(__name__)


def freeze_heap() -> None:
    """Move every object alive now out of the garbage collector's way, for the rest of the process."""
    gc.freeze()
    if log.isEnabledFor(logging.DEBUG):  # counting walks every one of them: 10 ms
        log.debug("%d objects set aside from garbage collection", gc.get_freeze_count())


async def freeze_once_loaded(toolkit: Toolkit) -> None:
    """`freeze_heap()` once `toolkit`'s catalog has loaded (never, if it cannot load: the process is ending)."""
    try:
        await toolkit.wait_for_catalog()
    except Exception:
        return
    freeze_heap()
