"""The live state of one sandbox: credits, runs, assets, idempotency keys, rate limits, faults, the request log and
the completion callbacks sent.

Tests may change `run_delay`, `technique_delays`, `latency` and `rate_limit` while the sandbox runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anyio.abc import TaskGroup

from flora_mcp.sandbox._assets import AssetStore
from flora_mcp.sandbox._catalog import Catalog, Technique
from flora_mcp.sandbox._config import Account, SandboxConfig
from flora_mcp.sandbox._errors import SandboxError
from flora_mcp.sandbox._faults import Faults, RecordedRequest
from flora_mcp.sandbox._fetch import Fetcher
from flora_mcp.sandbox._runs import Run, execute_run, now_ms
from flora_mcp.sandbox._webhooks import Webhooks

__all__ = ["SandboxState", "body_fingerprint"]


def body_fingerprint(technique_id: str, body: dict[str, Any]) -> str:
    """What must match for a reused idempotency key to count as the same request."""
    rest = {key: value for key, value in body.items() if key != "idempotency_key"}
    canonical = json.dumps([technique_id, rest], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class _Remembered:
    fingerprint: str
    resource_id: str
    """The run or asset the key made."""
    at: float


@dataclass
class _Bucket:
    tokens: float
    at: float


class SandboxState:
    """Everything a running sandbox knows; one per app."""

    def __init__(self, config: SandboxConfig, catalog: Catalog) -> None:
        self.config = config
        self.catalog = catalog
        self.run_delay = config.run_delay
        self.technique_delays = dict(config.technique_delays)
        self.latency = config.latency
        self.rate_limit = config.rate_limit
        self.credits: dict[str, float | None] = {key: account.credits for key, account in config.keys.items()}
        self.runs: dict[str, Run] = {}
        self.assets = AssetStore()
        self.requests: list[RecordedRequest] = []
        self.faults = Faults()
        self.webhooks = Webhooks(config.webhook_secret, self.faults, config.webhook_retry_delay)
        self.started_at = now_ms()
        self.files_dir: Path | None = None
        self.task_group: TaskGroup | None = None
        self._remembered: dict[tuple[str, str], _Remembered] = {}
        self._buckets: dict[str, _Bucket] = {}

    def account(self, api_key: str) -> Account | None:
        return self.config.keys.get(api_key)

    def delay_for(self, technique: Technique) -> float:
        for ref in (technique.slug, technique.technique_id):
            if ref is not None and ref in self.technique_delays:
                return self.technique_delays[ref]
        return self.run_delay

    def estimated_seconds(self, technique: Technique) -> float:
        """What a create answers as `estimated_seconds`: the technique's own time plus its delay, scaled."""
        return round((technique.estimated_seconds + self.delay_for(technique)) * self.config.estimate_scale, 3)

    def check_rate(self, api_key: str) -> None:
        """Spend one request from the key's token bucket; 429 with `Retry-After` when it is empty."""
        rate = self.rate_limit
        if rate is None:
            return
        now = time.monotonic()
        capacity = max(1.0, rate)
        bucket = self._buckets.setdefault(api_key, _Bucket(capacity, now))
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens < 1:
            wait = math.ceil((1 - bucket.tokens) / rate) if rate > 0 else 60
            raise SandboxError(429, "rate_limited", retry_after=max(1, wait))
        bucket.tokens -= 1

    def check_idempotency(self, api_key: str, key: str | None, fingerprint: str) -> None:
        """409 for a key reused with the same body within the window, 422 with a different body."""
        if key is None:
            return
        remembered = self._remembered.get((api_key, key))
        if remembered is None or time.monotonic() - remembered.at > self.config.idempotency_window:
            return
        if remembered.fingerprint != fingerprint:
            raise SandboxError(422, "idempotency_conflict")
        raise SandboxError(409, "idempotency_duplicate")

    def remember(self, api_key: str, key: str | None, fingerprint: str, resource_id: str) -> None:
        """Keep a key that made something, so that the same request again within the window is a duplicate."""
        if key is not None:
            self._remembered[(api_key, key)] = _Remembered(fingerprint, resource_id, time.monotonic())

    def check_credits(self, api_key: str, cost: float) -> None:
        balance = self.credits.get(api_key)
        if balance is not None and cost > balance + 1e-9:
            raise SandboxError(402, "insufficient_credits")

    def start_run(
        self,
        *,
        technique: Technique,
        api_key: str,
        inputs: dict[str, str],
        idempotency_key: str | None,
        fingerprint: str,
        poll_path: str,
        origin: str,
        callback_url: str | None = None,
    ) -> Run:
        """Charge, remember the idempotency key and start the run's work in the background."""
        if self.task_group is None or self.files_dir is None:
            raise RuntimeError("the sandbox app is not running: start it with its lifespan (serve_sandbox does)")
        account = self.config.keys[api_key]
        run_id = "run_" + secrets.token_hex(8)
        run = Run(
            run_id=run_id,
            technique=technique,
            api_key=api_key,
            workspace_id=account.workspace_id,
            inputs=inputs,
            idempotency_key=idempotency_key,
            poll_path=poll_path.format(run_id=run_id),
            sequence=len(self.runs) + 1,
            cost=technique.run_cost,
            charged_cost=technique.run_cost,
            callback_url=callback_url,
        )
        balance = self.credits.get(api_key)
        if balance is not None:
            self.credits[api_key] = round(balance - technique.run_cost, 9)
        self.remember(api_key, idempotency_key, fingerprint, run_id)
        self.runs[run_id] = run
        fetcher = Fetcher(origin, self.files_dir, self.config.fetch_max_bytes, self.config.fetch_timeout)
        self.task_group.start_soon(self._execute, run, fetcher, self.files_dir)
        return run

    async def _execute(self, run: Run, fetcher: Fetcher, files_dir: Path) -> None:
        await execute_run(
            run, delay=self.delay_for(run.technique), fetcher=fetcher, files_dir=files_dir, on_failure=self._refund
        )
        await self.webhooks.announce(run)

    def _refund(self, run: Run) -> None:
        balance = self.credits.get(run.api_key)
        if balance is not None:
            self.credits[run.api_key] = round(balance + run.charged_cost, 9)
        run.charged_cost = 0.0

    def run_for(self, api_key: str, run_id: str) -> Run | None:
        """The key's own run; another key's run is not found."""
        run = self.runs.get(run_id)
        return run if run is not None and run.api_key == api_key else None
