"""The store's tables, as numbered migrations per engine: applied in order at start, each once, recorded in
`schema_version`; a database already at the latest version is left as it is.

SQLite's first version is the journal as flora-mcp always wrote it (tables made only if missing), so an existing file
is taken up where it is. PostgreSQL starts at the latest shape. Amounts and times are doubles in both.
"""

from __future__ import annotations

__all__ = ["POSTGRES", "SQLITE"]

_TASKS = """
CREATE TABLE IF NOT EXISTS mcp_tasks (
    task_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    shape TEXT NOT NULL,
    tool TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    ttl_ms INTEGER NOT NULL,
    poll_ms INTEGER NOT NULL,
    run_ids TEXT NOT NULL,
    result TEXT,
    expires_at {real} NOT NULL
)"""

_ASSETS = """
CREATE TABLE IF NOT EXISTS uploaded_assets (
    account TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    url TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    created_at {real} NOT NULL,
    PRIMARY KEY (account, workspace_id, sha256)
)"""

_RUNS = """
CREATE TABLE IF NOT EXISTS runs (
    {rowid}idempotency_key TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    run_id TEXT,
    tool TEXT NOT NULL,
    technique_id TEXT NOT NULL,
    technique_slug TEXT,
    technique_name TEXT NOT NULL,
    status TEXT NOT NULL,
    progress {real},
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL DEFAULT '[]',
    charged_cost {real},
    run_cost {real},
    poll_url TEXT,
    error_code TEXT,
    error_message TEXT,
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL{session}
)"""

_WEBHOOK_EVENTS = """
CREATE TABLE IF NOT EXISTS webhook_events (
    event_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL
)"""

_INDEXES = [
    "CREATE INDEX IF NOT EXISTS runs_by_id ON runs (account, run_id)",
    "CREATE INDEX IF NOT EXISTS runs_by_time ON runs (account, created_at)",
]

_BUDGET = [
    "CREATE INDEX IF NOT EXISTS runs_by_session ON runs (budget_session)",
    """CREATE TABLE IF NOT EXISTS budget_holds (
    hold_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    session TEXT NOT NULL,
    run_key TEXT,
    amount {real} NOT NULL,
    created_at {real} NOT NULL,
    expires_at {real}
)""",
    "CREATE INDEX IF NOT EXISTS holds_by_account ON budget_holds (account)",
    "CREATE INDEX IF NOT EXISTS holds_by_session ON budget_holds (session)",
    "CREATE INDEX IF NOT EXISTS holds_by_run ON budget_holds (run_key)",
    """CREATE TABLE IF NOT EXISTS budget_sessions (
    scope TEXT PRIMARY KEY,
    session TEXT NOT NULL,
    last_used {real} NOT NULL
)""",
]

_SPEND_INDEXES = [
    # Spend is summed over a session's runs (every result's session spend) and over an account's runs of the day
    # (FLORA_PRINCIPAL_BUDGET): with the cost in the index, the sum reads the index alone, not every row it names
    # (a 1,000-run session: 270 -> 150 us, SQLite). They serve what the two they replace served.
    "CREATE INDEX IF NOT EXISTS runs_by_session_cost ON runs (budget_session, charged_cost)",
    "CREATE INDEX IF NOT EXISTS runs_by_time_cost ON runs (account, created_at, charged_cost)",
    "DROP INDEX IF EXISTS runs_by_session",
    "DROP INDEX IF EXISTS runs_by_time",
]

SQLITE: list[list[str]] = [
    [_RUNS.format(rowid="", real="REAL", session=""), *_INDEXES, _TASKS.format(real="REAL"),
     _ASSETS.format(real="REAL")],
    ["ALTER TABLE runs ADD COLUMN budget_session TEXT", *(s.format(real="REAL") for s in _BUDGET)],
    _SPEND_INDEXES,
]
"""SQLite migrations: 1, the journal, tasks and uploads as before; 2, budget sessions and holds; 3, the spend
indexes."""

POSTGRES: list[list[str]] = [
    [_RUNS.format(rowid="rowid BIGSERIAL,\n    ", real="DOUBLE PRECISION", session=",\n    budget_session TEXT"),
     *_INDEXES, _TASKS.format(real="DOUBLE PRECISION"), _ASSETS.format(real="DOUBLE PRECISION"),
     *(s.format(real="DOUBLE PRECISION") for s in _BUDGET)],
    [_WEBHOOK_EVENTS, "CREATE INDEX IF NOT EXISTS webhook_events_by_time ON webhook_events (received_at)"],
    _SPEND_INDEXES,
]
"""PostgreSQL migrations: 1, everything (`rowid` is SQLite's implicit order of insertion, made explicit); 2, the
webhook events replicas took (`flora_mcp.hosted._bus`: each acted on once, whichever replica it reached); 3, the
spend indexes."""
