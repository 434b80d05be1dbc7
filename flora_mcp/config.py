"""One settings object, read from the environment (`FLORA_*`) and overridden by command-line flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_BASE_URL", "Settings"]

DEFAULT_BASE_URL = "https://app.flora.ai/api/v1"


class Settings(BaseSettings):
    """Everything flora-mcp can be told; each field is also the environment variable `FLORA_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="FLORA_", extra="ignore", validate_default=True)

    api_key: SecretStr | None = Field(default=None, description="FLORA API key (sk_live_...).")
    base_url: str = Field(default=DEFAULT_BASE_URL, description="FLORA API base URL, ending in /api/v1.")
    workspace_id: str | None = Field(default=None, description="When set, runs go through POST /runs/technique.")

    poll_interval: float = Field(default=2.0, gt=0, description="Shortest time between two polls of a run, seconds.")
    max_wait: float = Field(default=50.0, gt=0, description="Longest a tool call waits for its run, seconds.")
    run_timeout: float = Field(default=3600.0, gt=0, description="Stop waiting on a run this long after it started.")
    request_timeout: float = Field(default=30.0, gt=0, description="Timeout of one HTTP request to FLORA, seconds.")
    max_retries: int = Field(default=3, ge=0, le=10, description="Retries of one request on transient failures.")
    catalog_concurrency: int = Field(default=8, ge=1, le=64, description="Technique schemas fetched at once.")

    log_level: str = Field(default="INFO", description="Log level of the stderr log.")
    journal: str | None = Field(default=None, description="Run journal path; ':memory:' for none on disk.")

    techniques: str | None = Field(default=None, description="Slug globs to include or exclude: 'cctv-*,!*-beta'.")
    query: str | None = Field(default=None, description="Passed as `query` to the technique list.")
    tools_mode: Literal["full", "compact", "auto"] = "auto"
    catalog_ttl: float = Field(default=3600.0, ge=0, description="Age after which a cached catalog is refreshed.")
    catalog_refresh: float = Field(default=0.0, ge=0, description="Re-list techniques every N seconds (0: never).")
    catalog_cache: str | None = Field(default=None, description="Catalog cache folder; 'off' disables it.")

    max_cost_per_call: float | None = Field(default=None, ge=0, description="Refuse a call costing more (USD).")
    session_budget: float | None = Field(default=None, ge=0, description="Refuse calls beyond this spend (USD).")
    preview: bool = Field(default=False, description="Attach small previews of image outputs.")
    tasks: bool = Field(default=False, description="Offer MCP tasks to clients that negotiate them (experimental).")

    mcp_tokens: SecretStr | None = Field(default=None, description="Comma-separated bearer tokens for hosted mode.")

    @field_validator("base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    def api_key_value(self) -> str | None:
        """The API key in clear, for the Authorization header only."""
        return self.api_key.get_secret_value() if self.api_key else None

    def journal_path(self) -> str:
        """Where the run journal lives: FLORA_JOURNAL, else the user's data directory."""
        if self.journal:
            return self.journal
        from platformdirs import user_data_dir

        return str(Path(user_data_dir("flora-mcp", appauthor=False)) / "runs.sqlite3")
