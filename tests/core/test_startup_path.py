"""What a server starting up in full mode does before its first tools/list: schemas asked for many at once, and no
module imported that only a later call needs.
"""

from __future__ import annotations

import json
import subprocess
import sys

import anyio
import httpx
import pytest

from flora_mcp.api.client import SCHEMA_FETCH_CONCURRENCY, FloraClient
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import serve_sandbox
from tests.support import TEST_KEY, sandbox_config, settings_for


class _InFlight(httpx.AsyncBaseTransport):
    """Counts the schema requests (`GET /techniques/{slug}`) in flight at once."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.now = 0
        self.peak = 0
        self.total = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        is_schema = request.method == "GET" and request.url.path.rstrip("/").count("/") >= 2 and \
            "/techniques/" in request.url.path
        if not is_schema:
            return await self._inner.handle_async_request(request)
        self.now += 1
        self.total += 1
        self.peak = max(self.peak, self.now)
        try:
            response = await self._inner.handle_async_request(request)
            await response.aread()
            return response
        finally:
            self.now -= 1

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.mark.anyio
async def test_schemas_are_fetched_many_at_once_not_a_few() -> None:
    # Each answer takes a while (long enough for a loaded machine to have sent all 64 before the first answer comes),
    # so every request the loader allows is in flight together.
    async with serve_sandbox(sandbox_config(extra_techniques=120, page_size=100, latency=0.3)) as box:
        transport = _InFlight()
        async with FloraClient(api_key=TEST_KEY, base_url=box.base_url, transport=transport) as client, \
                Toolkit(settings_for(box), client=client) as kit:
            assert len(kit.catalog) > 120
    assert SCHEMA_FETCH_CONCURRENCY >= 64  # round trips, not a small semaphore, bound a 1,000-technique start
    assert transport.total > SCHEMA_FETCH_CONCURRENCY
    assert transport.peak == SCHEMA_FETCH_CONCURRENCY


def test_the_serving_path_imports_no_pillow_and_no_httpx_command_line() -> None:
    # Everything `flora-mcp` imports before its first tools/list; Pillow (previews) and httpx's own command line
    # (rich, pygments; the SDK brings click anyway) are for later calls or never.
    code = ("import sys, json; import flora_mcp.cli, flora_mcp.server.stdio, flora_mcp.server.handlers, "
            "flora_mcp.core.refresh, flora_mcp.core.toolkit; "
            "print(json.dumps(sorted(m for m in ('PIL', 'httpx._main', 'pygments', 'rich') "
            "if sys.modules.get(m) is not None)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


@pytest.mark.anyio
async def test_previews_still_work_when_pillow_is_imported_late() -> None:
    from flora_mcp.core.previews import make_preview

    def png() -> bytes:
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (640, 320), "red").save(buffer, format="PNG")
        return buffer.getvalue()

    data, media_type = await anyio.to_thread.run_sync(lambda: make_preview(png(), max_side=64))
    assert media_type == "image/jpeg"
    assert data[:2] == b"\xff\xd8"
