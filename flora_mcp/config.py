"""One settings object, read from the environment (`FLORA_*`) and overridden by command-line flags.

Each field is one setting: its name is the variable `FLORA_<NAME>` and the flag `--<name>` (the flags are generated
from these fields by `flora_mcp.cli.flags`), its description is the flag's help. A secret is marked `NOT_A_FLAG`: a
command line is visible to every user of the machine (`ps`), so secrets come from the environment only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flora_mcp.api.assets import MAX_DATA_URL_BYTES, MAX_UPLOAD_BYTES
from flora_mcp.api.client import DEFAULT_TIMEOUT, MIN_POLL_INTERVAL, SCHEMA_FETCH_CONCURRENCY
from flora_mcp.api.errors import FloraError
from flora_mcp.api.retry import DEFAULT_MAX_RETRIES
from flora_mcp.api.webhooks import webhook_secrets

__all__ = ["DEFAULT_BASE_URL", "NOT_A_FLAG", "ConfigurationError", "Settings"]

DEFAULT_BASE_URL = "https://app.flora.ai/api/v1"

NOT_A_FLAG: dict[str, Any] = {"flag": False}
"""Field metadata (`json_schema_extra`) of a setting read from the environment only, never from a flag."""

MISSING_API_KEY = ("FLORA_API_KEY is not set. Set it to your FLORA API key (sk_live_..., from FLORA: Settings > API), "
                   "or run with --sandbox to try the embedded sandbox.")


class ConfigurationError(FloraError):
    """The settings cannot work (no API key, say)."""

    code = "configuration_error"


class Settings(BaseSettings):
    """Everything flora-mcp can be told; each field is also the environment variable `FLORA_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="FLORA_", extra="ignore", validate_default=True)

    api_key: SecretStr | None = Field(default=None, description="FLORA API key (sk_live_...).",
                                      json_schema_extra=NOT_A_FLAG)
    base_url: str = Field(default=DEFAULT_BASE_URL, description="FLORA API base URL, ending in /api/v1.")
    workspace_id: str | None = Field(default=None, description="Run through POST /runs/technique in this workspace.")

    poll_interval: float = Field(default=MIN_POLL_INTERVAL, gt=0,
                                 description="Shortest seconds between two polls of a run (FLORA asks for 2-5 s).")
    max_wait: float = Field(default=50.0, gt=0,
                            description="Longest seconds a call waits before returning `running` with the run id.")
    run_timeout: float = Field(default=3600.0, gt=0,
                               description="Stop waiting on a run this many seconds after it started.")
    request_timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0,
                                   description="Timeout of one HTTP request to FLORA, seconds.")
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0, le=10,
                             description="Retries of one request on 408/429/5xx/connection errors.")
    catalog_concurrency: int = Field(default=SCHEMA_FETCH_CONCURRENCY, ge=1, le=100,
                                     description="Technique schemas fetched at once while loading the catalog.")

    log_level: str = Field(default="INFO", description="Level of the stderr log: DEBUG, INFO, WARNING or ERROR.")
    journal: str | None = Field(default=None, description="Run journal path (SQLite; unset: runs.sqlite3 in the user "
                                                          "data folder); ':memory:' keeps none.")
    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL URL (postgresql://user:password@host:5432/db) that every replica "
                                  "shares: runs, spend, budgets, MCP tasks and uploads go there instead of the "
                                  "FLORA_JOURNAL file.", json_schema_extra=NOT_A_FLAG)

    techniques: str | None = Field(default=None, description="Slug globs to include or exclude: 'cctv-*,!*-beta'.")
    query: str | None = Field(default=None, description="Only techniques matching this search (FLORA's `query`).")
    tools_mode: Literal["full", "compact", "auto"] = Field(
        default="auto", description="full: one tool per technique; compact: search, describe and run tools that "
                                    "reach every technique; auto: compact above 40 techniques.")
    catalog_ttl: float = Field(default=3600.0, ge=0,
                               description="Seconds after which a cached catalog is refreshed (0: on every start).")
    catalog_refresh: float = Field(default=0.0, ge=0, description="Re-list techniques every N seconds (0: never).")
    catalog_cache: str | None = Field(default=None, description="Catalog cache folder (unset: the user cache folder, "
                                                                "none for a FLORA on loopback); 'off' disables it.")

    max_cost_per_call: float | None = Field(default=None, ge=0, description="Refuse a call costing more (USD).")
    session_budget: float | None = Field(default=None, ge=0,
                                         description="Refuse calls once this session would spend more (USD).")
    confirm_above: float | None = Field(
        default=None, ge=0, description="Ask the person before a call costing more (USD; 0: every paid call).")
    state_keys: SecretStr | None = Field(
        default=None, json_schema_extra=NOT_A_FLAG,
        description="Comma-separated secrets (32+ bytes each) sealing 2026 confirmation state; replicas share them.")
    preview: bool = Field(default=True, description="Attach small previews (<= 512 px, a few) of image outputs.")
    input_dirs: str | None = Field(default=None, description="Folders local files may be uploaded from, "
                                                             "os.pathsep-separated (unset: the client's MCP roots, "
                                                             "else the home folder).")
    output_dir: str | None = Field(default=None, description="Save every output of a completed run into this "
                                                             "folder (never overwriting a file).")
    max_upload_bytes: int = Field(default=MAX_UPLOAD_BYTES, ge=1,
                                  description="The largest local file uploaded as an input, in bytes.")
    max_data_url_bytes: int = Field(default=MAX_DATA_URL_BYTES, ge=1,
                                    description="The largest data: URL input uploaded, decoded, in bytes.")

    mcp_tokens: SecretStr | None = Field(default=None, description="Hosted mode: comma-separated bearer tokens, each "
                                         "optionally named (alice:tok1,bob:tok2).",
                                         json_schema_extra=NOT_A_FLAG)
    max_sessions: int = Field(default=10_000, ge=1, description="Hosted mode: MCP sessions open at once, in all.")
    max_sessions_per_principal: int = Field(default=100, ge=1,
                                            description="Hosted mode: MCP sessions one credential may hold open.")
    principal_budget: float | None = Field(
        default=None, ge=0, description="Refuse calls once one principal (person, token, key) would spend more today "
                                        "(USD, UTC day, counted from the run journal).")

    oauth_issuer: str | None = Field(
        default=None, description="Hosted mode: the OAuth 2.1 authorization server (issuer URL) whose access tokens "
                                  "admit callers.")
    public_url: str | None = Field(
        default=None, description="Hosted mode: this server's MCP URL as clients reach it (https://host/mcp), the "
                                  "resource OAuth tokens are issued for.")
    oauth_scopes: str = Field(
        default="flora:run", description="Hosted mode: scopes an access token must carry (space- or comma-separated).")
    oauth_token_type: str = Field(
        default="at+jwt", description="Hosted mode: the typ JWT access tokens must have: at+jwt (RFC 9068), JWT, "
                                      "or any.")
    oauth_leeway: float = Field(
        default=10.0, ge=0, le=300, description="Hosted mode: seconds of clock skew allowed on a token's exp and nbf.")
    oauth_client_id: str | None = Field(
        default=None, description="Hosted mode: this server's client id at the issuer, to introspect opaque tokens "
                                  "(RFC 7662).")
    oauth_client_secret: SecretStr | None = Field(
        default=None, description="Hosted mode: the secret of FLORA_OAUTH_CLIENT_ID, for introspection.",
        json_schema_extra=NOT_A_FLAG)
    webhook_secret: SecretStr | None = Field(
        default=None, json_schema_extra=NOT_A_FLAG,
        description="Hosted mode: FLORA's webhook signing secret (whsec_...; comma-separated during a rotation). "
                    "With FLORA_PUBLIC_URL, runs are created with a callback_url and complete on FLORA's webhook.")
    webhook_poll_interval: float = Field(
        default=15.0, gt=0, description="Hosted mode with webhooks: seconds between the safety-net polls of a run "
                                        "whose end a webhook will announce.")

    @field_validator("base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() and not value.get_secret_value().startswith(
                ("postgresql://", "postgres://")):
            raise ValueError("must be a PostgreSQL URL: postgresql://user:password@host:5432/database")
        return value

    @field_validator("state_keys")
    @classmethod
    def _keys_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        keys = [k.strip() for k in (value.get_secret_value() if value else "").split(",") if k.strip()]
        if any(len(k.encode()) < 32 for k in keys):
            raise ValueError("each key must be at least 32 bytes of secret randomness (python -c \"import secrets; "
                             "print(secrets.token_hex(32))\")")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # FLORA_WEBHOOK_SECRET= (empty, as a compose file passes an unset one): webhooks off
        webhook_secrets(value.get_secret_value())
        return value

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    def api_key_value(self) -> str | None:
        """The API key in clear, for the Authorization header only."""
        return self.api_key.get_secret_value() if self.api_key else None

    def require_api_key(self) -> str:
        """The API key in clear, for the Authorization header only.

        Raises:
            ConfigurationError: no key is set; the message says where to get one, or to use --sandbox.
        """
        key = self.api_key_value()
        if not key:
            raise ConfigurationError(MISSING_API_KEY)
        return key

    def webhook_secret_values(self) -> list[str]:
        """The webhook signing secrets in clear, for checking signatures only; empty when webhooks are off."""
        return webhook_secrets(self.webhook_secret.get_secret_value()) if self.webhook_secret else []

    def store_location(self) -> str:
        """Where runs, spend, budgets, tasks and uploads are kept: FLORA_DATABASE_URL, else the journal file."""
        url = self.database_url.get_secret_value() if self.database_url else ""
        return url or self.journal_path()

    def journal_path(self) -> str:
        """Where the run journal lives: FLORA_JOURNAL, else the user's data directory."""
        if self.journal:
            return self.journal
        from platformdirs import user_data_dir

        return str(Path(user_data_dir("flora-mcp", appauthor=False)) / "runs.sqlite3")
