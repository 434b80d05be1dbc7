"""Runs: their record, their JSON shape, and the background work that moves them to `completed` or `failed`.

A run fetches its URL inputs, waits its delay in steps (so `progress` rises), does the technique's work in a worker
thread, writes the outputs under the files directory and completes. Failures keep `charged_cost` at 0: the
sandbox refunds a failed run, as FLORA is assumed to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.to_thread

from flora_mcp.sandbox._catalog import URL_TYPES, InputValue, MediaType, Product, Technique, TechniqueFailure
from flora_mcp.sandbox._fetch import Fetcher, FetchError

__all__ = ["DELAY_STEPS", "Run", "RunOutput", "RunStatus", "execute_run", "now_ms"]

logger = logging.getLogger(__name__)

RunStatus = Literal["pending", "running", "completed", "failed"]
DELAY_STEPS = 8


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds, FLORA's assumed timestamp unit."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class RunOutput:
    """One output file of a finished run, as a path under the files directory."""

    output_id: str
    type: MediaType
    path: str


@dataclass(eq=False)
class Run:
    """A technique run, owned by one API key."""

    run_id: str
    technique: Technique
    api_key: str
    workspace_id: str
    inputs: dict[str, str]
    idempotency_key: str | None
    poll_path: str
    """Path under the API base, as the route that created the run names it."""
    sequence: int
    cost: float
    status: RunStatus = "pending"
    progress: int = 0
    created_at: int = field(default_factory=now_ms)
    started_at: int | None = None
    completed_at: int | None = None
    charged_cost: float = 0.0
    outputs: list[RunOutput] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    callback_url: str | None = None
    """Where the signed completion callback goes (`_webhooks.py`); None: the client polls."""

    @property
    def technique_id(self) -> str:
        return self.technique.technique_id

    @property
    def slug(self) -> str | None:
        return self.technique.slug

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed")

    def to_json(self, origin: str) -> dict[str, Any]:
        """The run object of FLORA's create/retrieve responses; URLs are absolute under `origin`."""
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "status": self.status,
            "progress": self.progress,
            "created_at": self.created_at,
        }
        if self.started_at is not None:
            data["started_at"] = self.started_at
        if self.completed_at is not None:
            data["completed_at"] = self.completed_at
        data["charged_cost"] = self.charged_cost
        if self.outputs:
            data["outputs"] = [
                {"output_id": o.output_id, "type": o.type, "url": f"{origin}/files/{o.path}"} for o in self.outputs
            ]
        if self.error_code is not None:
            data["error_code"] = self.error_code
            data["error_message"] = self.error_message
        data["poll_url"] = f"{origin}/api/v1/{self.poll_path}"
        return data


def _write_products(directory: Path, products: list[Product]) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for product in products:
        name = f"{product.output_id}.{product.extension}"
        (directory / name).write_bytes(product.data)
        names.append(name)
    return names


async def _fetch_inputs(run: Run, fetcher: Fetcher) -> dict[str, InputValue]:
    values: dict[str, InputValue] = {}
    for input_id, value in run.inputs.items():
        port = run.technique.input(input_id)
        values[input_id] = await fetcher.fetch(value) if port is not None and port.type in URL_TYPES else value
    return values


async def execute_run(
    run: Run,
    *,
    delay: float,
    fetcher: Fetcher,
    files_dir: Path,
    on_failure: Callable[[Run], None],
) -> None:
    """Take a pending run to `completed` or `failed`; never raises."""
    run.status = "running"
    run.started_at = now_ms()
    run.progress = 5
    try:
        values = await _fetch_inputs(run, fetcher)
        run.progress = 10
        if delay > 0:
            for step in range(1, DELAY_STEPS + 1):
                await anyio.sleep(delay / DELAY_STEPS)
                run.progress = 10 + 80 * step // DELAY_STEPS
        products = await anyio.to_thread.run_sync(run.technique.work, values)
        run.progress = 95
        directory = files_dir / "runs" / run.run_id
        names = await anyio.to_thread.run_sync(_write_products, directory, products)
    except FetchError as exc:
        _fail(run, "input_fetch_error", str(exc), on_failure)
        return
    except TechniqueFailure as exc:
        _fail(run, exc.code, exc.message, on_failure)
        return
    except Exception as exc:  # a bug in a technique must fail its run, not the sandbox
        logger.exception("run %s crashed", run.run_id)
        _fail(run, "internal_error", f"The technique crashed: {exc!r}", on_failure)
        return
    run.outputs = [
        RunOutput(product.output_id, product.type, f"runs/{run.run_id}/{name}")
        for product, name in zip(products, names, strict=True)
    ]
    run.progress = 100
    run.completed_at = now_ms()
    run.status = "completed"


def _fail(run: Run, code: str, message: str, on_failure: Callable[[Run], None]) -> None:
    run.error_code = code
    run.error_message = message
    run.completed_at = now_ms()
    run.status = "failed"
    on_failure(run)
