"""server/heap.py: a server starts with collection paused; the freeze collects what start-up left as cycles (it is
freed, not kept for the process's life) and turns collection back on."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from flora_mcp.config import Settings
from flora_mcp.core.startup import StartupError
from flora_mcp.server.heap import freeze_heap, pause_collection
from flora_mcp.server.stdio import serve_stdio
from tests.support import TEST_KEY


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def collection_restored() -> Iterator[None]:
    yield
    gc.unfreeze()  # the test process's heap goes back into the collector's view
    gc.enable()


def garbage_cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_a_paused_start_ups_cycles_are_collected_before_the_freeze_and_collection_resumes(
        collection_restored: None) -> None:
    pause_collection()
    assert not gc.isenabled()
    left = garbage_cycle()
    kept = Node()
    freeze_heap()
    assert left() is None  # collected, not frozen for good
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    assert kept.other is None


def test_a_freeze_with_collection_on_leaves_it_on(collection_restored: None) -> None:
    gc.enable()
    freeze_heap()
    assert gc.isenabled() and gc.get_freeze_count() > 0


@pytest.mark.anyio
async def test_a_stdio_server_that_cannot_start_turns_collection_back_on(tmp_path: Path,
                                                                          collection_restored: None) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    settings = Settings(api_key=TEST_KEY, base_url="http://127.0.0.1:9/v1", journal=str(folder), catalog_cache="off")
    gc.enable()
    with pytest.raises(StartupError, match="folder"):
        await serve_stdio(settings)
    assert gc.isenabled()
