"""Configuration of the sandbox: API keys with their accounts, run timing, paging, limits.

Everything here is plain data; `SandboxState` copies the values that tests may change while the sandbox runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DEFAULT_SANDBOX_KEY", "DEFAULT_WEBHOOK_SECRET", "Account", "SandboxConfig"]

DEFAULT_SANDBOX_KEY = "sk_sandbox_local"
DEFAULT_WEBHOOK_SECRET = "whsec_sandbox_local_0123456789abcdef"
"""The secret the sandbox signs completion callbacks with, as FLORA signs with an account's `whsec_` secret."""


@dataclass
class Account:
    """What one API key may do: its credit balance, its visible techniques and its workspace."""

    credits: float | None = None
    """Balance in USD; None means unlimited."""
    techniques: list[str] | None = None
    """Slugs or technique ids this key may see and run; None means all."""
    workspace_id: str = "ws_sandbox"
    workspace_name: str = "Sandbox Workspace"
    other_workspaces: dict[str, str] = field(default_factory=dict)
    """More workspaces the key may use, id to name, listed after its own."""

    @property
    def workspaces(self) -> dict[str, str]:
        """Every workspace the key may use, id to name, its own first."""
        return {self.workspace_id: self.workspace_name, **self.other_workspaces}


def _default_keys() -> dict[str, Account]:
    return {DEFAULT_SANDBOX_KEY: Account()}


@dataclass
class SandboxConfig:
    """How a sandbox behaves; defaults suit fast tests (no delay, no limits, small pages)."""

    keys: dict[str, Account] = field(default_factory=_default_keys, repr=False)
    host: str = "127.0.0.1"
    port: int = 0
    run_delay: float = 0.0
    """Seconds every run waits (with rising progress) on top of its real work."""
    technique_delays: dict[str, float] = field(default_factory=dict)
    """Per-technique override of `run_delay`, keyed by slug or technique id."""
    estimate_scale: float = 1.0
    """Multiplies the `estimated_seconds` that creates answer; 0 makes clients poll at once (fast tests)."""
    page_size: int = 3
    max_page_size: int = 100
    runs_page_size: int = 20
    rate_limit: float | None = None
    """Requests per second per API key; None turns rate limiting off."""
    idempotency_window: float = 2 * 60 * 60
    enable_control: bool = False
    """Mount the `/_sandbox/...` control routes (fault injection over HTTP, request log)."""
    latency: float = 0.0
    """Seconds added to every request, for benchmarks."""
    extra_techniques: int = 0
    """Cheap synthetic techniques (`synthetic-0001`, ...) added to the catalog."""
    fetch_max_bytes: int = 10 * 1024 * 1024
    fetch_timeout: float = 10.0
    asset_max_bytes: int = 512 * 1024 * 1024
    """The largest file a signed upload may carry."""
    asset_reservation_ttl: float = 3600.0
    """Seconds a signed-upload reservation stays open."""
    asset_processing_delay: float = 0.0
    """Seconds a signed or URL upload stays `pending_upload` after its bytes arrived (clients then poll)."""
    signed_upload: Literal["post", "put"] = "post"
    """How a reservation's target takes the bytes: a presigned POST form (`upload`) or a raw PUT (`upload_url`)."""
    assets_page_size: int = 20
    webhook_secret: str = field(default=DEFAULT_WEBHOOK_SECRET, repr=False)
    """Signs the callbacks of runs created with `callback_url` (`Flora-Signature`)."""
    webhook_retry_delay: float = 0.5
    """Seconds before the first retry of a callback the receiver did not take (doubling; 3 attempts in all)."""

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("SandboxConfig.keys needs at least one API key")
        if self.page_size < 1 or self.max_page_size < self.page_size:
            raise ValueError("page_size must be >= 1 and <= max_page_size")
        if not self.webhook_secret.startswith("whsec_"):
            raise ValueError("webhook_secret must start with whsec_, as FLORA's do")
