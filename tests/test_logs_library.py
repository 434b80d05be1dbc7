"""A library user's own logging (`logging.basicConfig(level=DEBUG)`, httpx and httpcore at DEBUG) never sees the key.

The CLI puts a redacting filter on its own handler; a library user has handlers of their own, so the redaction must
come with the package: every FloraClient and Toolkit installs it. The key here is not `sk_`-shaped, so only the
redaction of registered secrets can hide it, not the key pattern.
"""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.logs import REDACTED
from flora_mcp.sandbox import Account, Sandbox, serve_sandbox
from tests.support import sandbox_config, settings_for

LIBRARY_KEY = "flora-library-user-key-7Hq2Zx9Kw"
DEBUG_LOGGERS = ("flora_mcp", "httpx", "httpcore")


class Captured:
    """What a `basicConfig(level=DEBUG)` handler on the root logger wrote, formatted with its tracebacks."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.records: list[logging.LogRecord] = []

    @property
    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def library_logging() -> Iterator[Captured]:
    """The application's logging, as a library user sets it up; the record factory as Python made it."""
    captured = Captured()
    handler = logging.StreamHandler(captured.stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    recorder = logging.Handler()
    recorder.emit = captured.records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    saved_factory = logging.getLogRecordFactory()
    saved = (root.level, {name: logging.getLogger(name).level for name in DEBUG_LOGGERS})
    # Start from Python's own factory: the Toolkit made in the test must install the redaction itself.
    logging.setLogRecordFactory(logging.LogRecord)
    root.addHandler(handler)
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)
    for name in DEBUG_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        root.removeHandler(recorder)
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)
        logging.setLogRecordFactory(saved_factory)


@pytest.fixture
async def library_sandbox() -> AsyncIterator[Sandbox]:
    async with serve_sandbox(sandbox_config(keys={LIBRARY_KEY: Account()})) as box:
        yield box


def _leak_request_headers(toolkit: Toolkit) -> None:
    """A deliberate bug: log every request's headers, Authorization included, on flora-mcp's and httpx's loggers."""

    async def log_headers(request: httpx.Request) -> None:
        for name in ("flora_mcp.api.client", "httpx", "httpcore.http11"):
            logging.getLogger(name).debug("request headers: %s", dict(request.headers))
        try:
            raise RuntimeError(f"failed with {request.headers['authorization']}")
        except RuntimeError:
            logging.getLogger("flora_mcp.core.runs").exception("call failed")

    toolkit.client._http.event_hooks["request"].append(log_headers)
    kept = toolkit.client._kept
    if kept is not None:
        # Polls and keyed creates go over flora-mcp's own kept-alive connections, which httpx's hooks never see.
        send = kept.send

        async def send_logging_headers(request: httpx.Request) -> httpx.Response:
            await log_headers(request)
            return await send(request)

        kept.send = send_logging_headers  # type: ignore[method-assign]


def _assert_no_key(captured: Captured) -> None:
    assert captured.records, "nothing was logged: the test would prove nothing"
    assert LIBRARY_KEY not in captured.text
    for record in captured.records:
        assert LIBRARY_KEY not in record.getMessage()
        assert LIBRARY_KEY not in (record.exc_text or "")
        assert LIBRARY_KEY not in repr(record.args)


@pytest.mark.anyio
async def test_a_toolkit_call_at_debug_never_logs_the_key(library_sandbox: Sandbox, library_logging: Captured) -> None:
    async with Toolkit(settings_for(library_sandbox, api_key=LIBRARY_KEY)) as toolkit:
        result = await toolkit.call("qr-code-generator", {"content": "hello"})
    assert result.status == "completed"
    assert any(record.name.startswith("httpcore") for record in library_logging.records)
    assert any(record.name == "httpx" for record in library_logging.records)
    _assert_no_key(library_logging)


@pytest.mark.anyio
async def test_a_bug_that_logs_the_authorization_header_still_leaks_nothing(
        library_sandbox: Sandbox, library_logging: Captured) -> None:
    async with Toolkit(settings_for(library_sandbox, api_key=LIBRARY_KEY)) as toolkit:
        _leak_request_headers(toolkit)
        result = await toolkit.call("qr-code-generator", {"content": "hello"})
    assert result.status == "completed"
    leaked = [r for r in library_logging.records if r.getMessage().startswith("request headers:")]
    assert {r.name for r in leaked} == {"flora_mcp.api.client", "httpx", "httpcore.http11"}
    assert all(f"Bearer {REDACTED}" in r.getMessage() for r in leaked)
    assert f"failed with Bearer {REDACTED}" in library_logging.text
    _assert_no_key(library_logging)


def test_records_of_other_loggers_are_left_as_the_application_wrote_them(library_logging: Captured) -> None:
    from flora_mcp.logs import add_secret

    add_secret(LIBRARY_KEY)
    logging.getLogger("my_app").warning("my own %s", "words sk_live_ABCDEF123456")
    [record] = [r for r in library_logging.records if r.name == "my_app"]
    assert record.args == ("words sk_live_ABCDEF123456",)
