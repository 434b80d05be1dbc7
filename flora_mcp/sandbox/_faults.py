"""Test instrumentation: the log of requests that reached the sandbox, and faults injected into its answers.

A fault applies to the next `count` requests of one route (or `"*"` for any). `when="before"` answers the fault
without running the handler (no side effects); `when="after"` runs the real handler first (a run IS created and
charged) and then replaces, delays or loses its response: an unknown outcome, as the client sees it.

Kinds: `status` (an error envelope with `status`/`code`), `drop` (the connection closes after the response head:
httpx raises `RemoteProtocolError`), `stall` (wait `seconds`: "before" then answers 504, "after" then sends the real
response), `html` (a proxy's HTML error page, 502 by default), `truncated` (200 with half a JSON body), `run_failed`
(a run route's real answer, made a failed run with `code` and `message`; always "after").

The route `"webhook"` is no request but the sandbox's own outgoing completion callbacks (`_webhooks.py`), with kinds
of its own: `drop` (never sent), `delay` (sent `seconds` late), `duplicate` (sent twice), `forge` (signed with a wrong
secret), `stale` (signed correctly, with a timestamp 10 minutes old). `"*"` never matches it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from flora_mcp.sandbox._errors import code_for_status

__all__ = ["ROUTE_NAMES", "WEBHOOK_KINDS", "WEBHOOK_ROUTE", "Fault", "FaultKind", "FaultWhen", "Faults",
           "RecordedRequest"]

ROUTE_NAMES = (
    "list_techniques",
    "get_technique",
    "create_technique_run",
    "get_technique_run",
    "create_run",
    "get_run",
    "list_workspaces",
    "list_technique_runs",
    "create_asset",
    "list_assets",
    "get_asset",
    "complete_asset",
    "retry_asset",
    "bucket_upload",
    "files",
)

WEBHOOK_ROUTE = "webhook"
"""The fault route of outgoing completion callbacks."""

FaultKind = Literal["status", "drop", "stall", "html", "truncated", "run_failed", "delay", "duplicate", "forge",
                    "stale"]
WEBHOOK_KINDS = frozenset({"drop", "delay", "duplicate", "forge", "stale"})
"""What can happen to a callback; `drop` is the one kind it shares with requests."""
_REQUEST_KINDS = frozenset({"status", "drop", "stall", "html", "truncated", "run_failed"})
FaultWhen = Literal["before", "after"]
_DEFAULT_STATUS: dict[str, int] = {"status": 503, "html": 502, "truncated": 200, "drop": 200, "stall": 504,
                                   "run_failed": 200}
_DEFAULT_CODE: dict[str, str] = {"run_failed": "provider_error"}


@dataclass
class RecordedRequest:
    """One request as the sandbox received it; `status` is what it answered (0 when it never answered)."""

    route: str
    method: str
    path: str
    query: dict[str, str]
    api_key: str | None = field(repr=False)  # kept out of reprs so a failing test does not print a key
    idempotency_key: str | None
    """The `Idempotency-Key` header as sent (None without one); a key in the JSON body is only in `body`."""
    body: Any | None
    status: int = 0
    request_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Fault:
    """One injected fault and how many more requests it will hit."""

    route: str
    kind: FaultKind = "status"
    count: int = 1
    status: int = 503
    code: str = "unknown_error"
    seconds: float = 5.0
    when: FaultWhen = "before"
    retry_after: float | None = None
    message: str | None = None
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        if self.route not in ("*", WEBHOOK_ROUTE, *ROUTE_NAMES):
            raise ValueError(f"unknown route {self.route!r}; expected one of {', '.join(ROUTE_NAMES)}, "
                             f"{WEBHOOK_ROUTE!r} or '*'")
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        kinds = WEBHOOK_KINDS if self.route == WEBHOOK_ROUTE else _REQUEST_KINDS
        if self.kind not in kinds:
            raise ValueError(f"a {self.route!r} fault is one of {', '.join(sorted(kinds))}, not {self.kind!r}")
        if self.when not in get_args(FaultWhen):
            raise ValueError(f"when must be 'before' or 'after', not {self.when!r}")
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if self.kind == "run_failed":
            self.when = "after"  # it spoils the real run object
        self.remaining = self.count

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Faults:
    """The faults waiting to hit requests, first injected first used."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []

    def inject(
        self,
        route: str,
        kind: FaultKind = "status",
        *,
        count: int = 1,
        status: int | None = None,
        code: str | None = None,
        seconds: float = 5.0,
        when: FaultWhen = "before",
        retry_after: float | None = None,
        message: str | None = None,
    ) -> Fault:
        """Make the next `count` requests of `route` fail in the way `kind` says.

        Args:
            route: a route name from `ROUTE_NAMES`, "*" for every route, or "webhook" for completion callbacks.
            kind: "status", "drop", "stall", "html" or "truncated"; for "webhook": "drop", "delay", "duplicate",
                "forge" or "stale".
            count: how many requests the fault hits.
            status: HTTP status (defaults: status 503, html 502, truncated 200).
            code: error code for "status" faults (default: the code FLORA sends with that status).
            seconds: how long a "stall" waits, or a "delay"ed callback is held back.
            when: "before" skips the handler; "after" runs it and then spoils its response.
            retry_after: seconds for a `Retry-After` header on "status" faults.
            message: error message for "status" and "run_failed" faults.

        Returns:
            The fault, whose `remaining` counts down as requests hit it.
        """
        chosen_status = status if status is not None else _DEFAULT_STATUS.get(kind, 503)
        fault = Fault(
            route,
            kind,
            count,
            chosen_status,
            code or _DEFAULT_CODE.get(kind) or code_for_status(chosen_status),
            seconds,
            when,
            retry_after,
            message,
        )
        self._pending.append(fault)
        return fault

    def clear(self) -> None:
        """Forget every pending fault."""
        self._pending.clear()

    @property
    def pending(self) -> list[Fault]:
        return list(self._pending)

    def take(self, route: str) -> Fault | None:
        """The fault that hits this request of `route`, counting it down; None when there is none."""
        for fault in self._pending:
            if fault.route == route or (fault.route == "*" and route != WEBHOOK_ROUTE):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._pending.remove(fault)
                return fault
        return None
