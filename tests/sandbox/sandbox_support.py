"""Helpers for the sandbox's contract tests: an httpx client for one sandbox and key, and polling."""

from __future__ import annotations

import io
from typing import Any

import anyio
import httpx
from PIL import Image

from flora_mcp.sandbox import Sandbox

RUN_TIMEOUT = 15.0


class Api:
    """An httpx client for one sandbox and key, with the few calls every test needs."""

    def __init__(self, box: Sandbox, client: httpx.AsyncClient) -> None:
        self.box = box
        self.client = client

    async def technique(self, ref: str) -> dict[str, Any]:
        response = await self.client.get(f"/techniques/{ref}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def create(self, ref: str, inputs: dict[str, str], **extra: Any) -> httpx.Response:
        """POST a nested run, typing each input as the technique's schema says."""
        schema = {port["id"]: port["type"] for port in (await self.technique(ref))["inputs"]}
        items = [{"id": key, "type": schema.get(key, "text"), "value": value} for key, value in inputs.items()]
        return await self.client.post(f"/techniques/{ref}/runs", json={"inputs": items, "mode": "async", **extra})

    async def wait(self, poll_url: str) -> dict[str, Any]:
        """Poll until the run finishes; fails the test after RUN_TIMEOUT seconds."""
        with anyio.fail_after(RUN_TIMEOUT):
            while True:
                response = await self.client.get(poll_url)
                assert response.status_code == 200, response.text
                run: dict[str, Any] = response.json()
                if run["status"] in ("completed", "failed"):
                    return run
                await anyio.sleep(0.01)

    async def run(self, ref: str, inputs: dict[str, str]) -> dict[str, Any]:
        response = await self.create(ref, inputs)
        assert response.status_code == 200, response.text
        return await self.wait(response.json()["poll_url"])

    async def image(self, url: str) -> Image.Image:
        response = await self.client.get(url)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(response.content))
        image.load()
        return image

    async def text(self, url: str) -> str:
        response = await self.client.get(url)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return response.text


def loopback_client(**options: Any) -> httpx.AsyncClient:
    """A client for plain-HTTP loopback: no proxies from the environment, and no CA bundle to load (~60 ms each)."""
    return httpx.AsyncClient(trust_env=False, verify=False, **options)


def client_for(box: Sandbox, key: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key or box.api_key}"}
    return loopback_client(base_url=box.base_url, headers=headers, timeout=10)
