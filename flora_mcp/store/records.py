"""What the store keeps, engine-neutral: journal rows, MCP task rows, remembered uploads, budget admissions.

Defined once here; the engines (sqlite.py, postgres.py) read and write them, the core and the server use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from flora_mcp.api.errors import FloraError
from flora_mcp.api.models import RunStatus

__all__ = ["JOURNAL_STATUSES", "MEMORY", "UPDATABLE", "Admission", "JournalEntry", "JournalError", "JournalStatus",
           "RememberedAsset", "StoredTask"]

MEMORY = ":memory:"
"""The location of a store that lives as long as the process."""

JournalStatus = Literal[RunStatus, "unknown", "error", "submitting"]
"""A row's status: FLORA's run status once there is a run; before, `submitting` (the create is about to leave),
`unknown` (it left and may have made a run) or `error` (FLORA refused it)."""
JOURNAL_STATUSES: tuple[JournalStatus, ...] = get_args(JournalStatus)

UPDATABLE = frozenset({"run_id", "status", "progress", "outputs", "charged_cost", "poll_url", "error_code",
                       "error_message"})
"""The journal fields a run's later events may set."""


class JournalError(FloraError):
    """The store cannot be opened; the message names the file (or database) and what to do."""

    code = "journal_error"


@dataclass(frozen=True)
class JournalEntry:
    """One journal row."""

    idempotency_key: str
    account: str
    run_id: str | None
    tool: str
    technique_id: str
    technique_slug: str | None
    technique_name: str
    status: str
    progress: float | None
    inputs: dict[str, Any]
    outputs: list[dict[str, Any]]
    charged_cost: float | None
    run_cost: float | None
    poll_url: str | None
    error_code: str | None
    error_message: str | None
    created_at: float
    updated_at: float

    def as_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready fields, without the account hash."""
        return {k: v for k, v in self.__dict__.items() if k != "account"}


@dataclass(frozen=True)
class StoredTask:
    """What the store keeps of one MCP task: its answers' fields and the FLORA runs to follow, never its arguments."""

    task_id: str
    account: str
    shape: str
    tool: str
    status: str
    message: str
    created_at: str
    updated_at: str
    ttl_ms: int
    poll_ms: int
    run_ids: list[str]
    result: dict[str, Any] | None


@dataclass(frozen=True)
class RememberedAsset:
    """A FLORA asset already made of some bytes (by SHA-256), reused instead of uploading them again."""

    asset_id: str
    url: str
    size_bytes: int
    content_type: str


@dataclass(frozen=True)
class Admission:
    """The answer of one atomic budget check: the reservation's id when it fits, else what is left of each budget.

    `session_left` / `daily_left` are None for a budget that is not set.
    """

    reservation_id: str | None
    session_left: float | None
    daily_left: float | None
