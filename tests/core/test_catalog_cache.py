"""The catalog cache on disk: hits, misses, expiry, corrupt files, atomic writes, and a warm start over stdio."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

from flora_mcp.api.models import Technique
from flora_mcp.config import Settings
from flora_mcp.core.cache import CACHE_FORMAT, CatalogCache
from flora_mcp.core.refresh import CatalogRefresher
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from tests.support import TEST_KEY, sandbox_env, settings_for, stdio_session

BASE = "https://app.flora.ai/api/v1"

TECHNIQUES = [
    Technique.model_validate({
        "technique_id": "tech_1", "slug": "cctv-cam", "name": "CCTV Cam", "description": "Grainy.", "run_cost": 0.05,
        "inputs": [{"id": "input_image", "name": "Input Image", "type": "imageUrl", "allowMultiple": True}],
        "outputs": [{"id": "output_image", "type": "imageUrl", "specifiedAspectRatio": "4:3"}],
        "future_field": {"kept": True},
    }),
    Technique.model_validate({"technique_id": "tech_2", "name": "Soft Focus", "inputs": [], "run_cost": None}),
]


def cache_in(directory: Path, **view: Any) -> CatalogCache:
    return CatalogCache(directory, base_url=view.pop("base_url", BASE), api_key=view.pop("api_key", TEST_KEY), **view)


def test_saved_techniques_load_back_unchanged(tmp_path: Path) -> None:
    cache = cache_in(tmp_path)
    assert cache.load() is None  # a miss
    cache.save(TECHNIQUES, now=1_000.0)
    cached = cache.load()
    assert cached is not None
    assert [t.model_dump() for t in cached.techniques] == [t.model_dump() for t in TECHNIQUES]
    assert cached.techniques[0].model_extra == {"future_field": {"kept": True}}
    assert cached.saved_at == 1_000.0 and cached.age(now=1_030.0) == 30.0
    assert cached.age(now=900.0) == 0.0  # a clock that went back never makes a negative age


def test_the_key_is_in_no_file_name_and_no_file(tmp_path: Path) -> None:
    cache = cache_in(tmp_path)
    cache.save(TECHNIQUES)
    files = list(tmp_path.iterdir())
    assert files == [cache.path]
    assert TEST_KEY not in cache.path.name and TEST_KEY not in cache.path.read_text()
    assert cache.path.stat().st_mode & 0o077 == 0  # readable by its owner only


@pytest.mark.parametrize("other", [
    pytest.param({"api_key": "sk_live_another0key"}, id="another key"),
    pytest.param({"base_url": "https://staging.flora.ai/api/v1"}, id="another base URL"),
    pytest.param({"query": "video"}, id="a query"),
    pytest.param({"techniques": "cctv-*"}, id="a technique filter"),
])
def test_each_catalog_view_has_its_own_file(tmp_path: Path, other: dict[str, Any]) -> None:
    cache_in(tmp_path).save(TECHNIQUES)
    assert cache_in(tmp_path, **other).load() is None
    assert cache_in(tmp_path, **other).path != cache_in(tmp_path).path


def _rewrite(path: Path, change: Any) -> None:
    body = json.loads(path.read_text())
    path.write_text(change(body) if callable(change) else change)


@pytest.mark.parametrize("change", [
    pytest.param("{not json", id="not JSON"),
    pytest.param("", id="empty"),
    pytest.param(lambda b: json.dumps([b]), id="not an object"),
    pytest.param(lambda b: json.dumps({**b, "format": CACHE_FORMAT + 1}), id="another format"),
    pytest.param(lambda b: json.dumps({**b, "base_url": "https://evil.example/api/v1"}), id="another base URL"),
    pytest.param(lambda b: json.dumps({**b, "saved_at": "yesterday"}), id="bad saved_at"),
    pytest.param(lambda b: json.dumps({k: v for k, v in b.items() if k != "saved_at"}), id="no saved_at"),
    pytest.param(lambda b: json.dumps({**b, "techniques": {"a": 1}}), id="techniques not a list"),
    pytest.param(lambda b: json.dumps({**b, "techniques": [{"slug": "no-id"}]}), id="a technique without id"),
    pytest.param(lambda b: json.dumps({**b, "techniques": [{"technique_id": "tech_9"}]}), id="a summary item"),
])
def test_a_corrupt_cache_is_ignored_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture, change: Any) -> None:
    cache = cache_in(tmp_path)
    cache.save(TECHNIQUES)
    _rewrite(cache.path, change)
    with caplog.at_level(logging.WARNING, logger="flora_mcp.core.cache"):
        assert cache.load() is None
    assert any(str(cache.path) in r.getMessage() for r in caplog.records)


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cache = cache_in(tmp_path)
    cache.save(TECHNIQUES[:1], now=1.0)

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        cache.save(TECHNIQUES, now=2.0)
    monkeypatch.undo()
    cached = cache.load()
    assert cached is not None and len(cached.techniques) == 1 and cached.saved_at == 1.0
    assert list(tmp_path.iterdir()) == [cache.path]


# The toolkit and the cache -------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_load_writes_the_cache_and_the_next_start_serves_it_without_a_request(
        sandbox: Sandbox, tmp_path: Path) -> None:
    settings = settings_for(sandbox, catalog_cache=str(tmp_path))
    async with Toolkit(settings) as first:
        names = list(first.catalog.tools)
        definitions = first.tool_definitions()
    requests = len(sandbox.requests)
    second = Toolkit(settings)
    try:
        age = second.load_cached_catalog()
        assert age is not None and 0 <= age < 60
        assert list(second.catalog.tools) == names  # same techniques, same names
        assert second.tool_definitions() == definitions
        assert len(sandbox.requests) == requests  # served from disk
    finally:
        await second.aclose()


@pytest.mark.anyio
async def test_catalog_cache_off_reads_and_writes_nothing(sandbox: Sandbox, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    async with Toolkit(settings_for(sandbox, catalog_cache="off")) as kit:
        assert kit.cache is None and kit.load_cached_catalog() is None
    assert list(tmp_path.rglob("*.json")) == []


@pytest.mark.parametrize(("base_url", "cached"), [
    pytest.param(BASE, True, id="FLORA: the user's cache folder"),
    pytest.param("http://127.0.0.1:8123/api/v1", False, id="a sandbox on loopback: no file per port"),
    pytest.param("http://localhost:8123/api/v1", False, id="localhost"),
    pytest.param("http://[::1]:8123/api/v1", False, id="IPv6 loopback"),
])
@pytest.mark.anyio
async def test_the_default_cache_folder_is_for_flora_not_for_a_sandbox(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_url: str, cached: bool) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for folder in (None, str(tmp_path / "named")):
        toolkit = Toolkit(Settings(api_key=SecretStr(TEST_KEY), base_url=base_url, journal=":memory:",
                                   catalog_cache=folder))
        try:
            if folder is None and not cached:
                assert toolkit.cache is None
            else:
                assert toolkit.cache is not None
                assert toolkit.cache.path.parent == (tmp_path / "flora-mcp" / "catalogs" if folder is None
                                                     else Path(folder))
        finally:
            await toolkit.aclose()


@pytest.mark.anyio
async def test_an_unwritable_cache_is_logged_not_fatal(sandbox: Sandbox, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING, logger="flora_mcp.core.toolkit"):
        async with Toolkit(settings_for(sandbox, catalog_cache=str(blocker / "catalogs"))) as kit:
            assert len(kit.catalog) == len(sandbox.state.catalog.techniques)
    assert any("cannot write the catalog cache" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("age", "ttl", "refresh", "expected"), [
    pytest.param(None, 3600, 0, None, id="loaded from FLORA, no periodic refresh: never"),
    pytest.param(None, 3600, 300, 300, id="loaded from FLORA: after one refresh interval"),
    pytest.param(600, 3600, 0, 3000, id="fresh cache: when it expires"),
    pytest.param(600, 3600, 60, 60, id="fresh cache, periodic refresh sooner: at the interval"),
    pytest.param(7200, 3600, 0, 0, id="expired cache: at once"),
    pytest.param(5, 0, 0, 0, id="TTL 0: every warm start refreshes at once"),
])
@pytest.mark.anyio
async def test_when_the_first_refresh_comes(sandbox: Sandbox, age: float | None, ttl: float, refresh: float,
                                            expected: float | None) -> None:
    toolkit = Toolkit(settings_for(sandbox, catalog_ttl=ttl, catalog_refresh=refresh))
    try:
        assert CatalogRefresher(toolkit).first_delay(age) == expected
    finally:
        await toolkit.aclose()


# A warm start over stdio ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_warm_start_lists_the_cached_tools_while_flora_is_unreachable(sandbox: Sandbox,
                                                                              tmp_path: Path) -> None:
    async with Toolkit(settings_for(sandbox, catalog_cache=str(tmp_path))) as kit:
        expected = {t["name"] for t in kit.tool_definitions()}
    sandbox.requests.clear()
    # Every FLORA request now hangs: only the cache can answer, and the background refresh must not block anything.
    sandbox.faults.inject(route="*", kind="stall", seconds=30, count=1000)
    env = sandbox_env(sandbox, FLORA_CATALOG_CACHE=str(tmp_path), FLORA_CATALOG_TTL="3600")
    async with stdio_session([], env) as (session, _):
        with anyio.fail_after(20):  # shorter than the 30 s stall: the tools came without FLORA
            tools = (await session.list_tools()).tools
        assert all(r.status == 0 for r in sandbox.requests)  # listed before FLORA answered anything
    assert {t.name for t in tools} == expected
    assert sandbox.requests_for("list_techniques") == []  # a fresh cache is not refreshed at start-up
