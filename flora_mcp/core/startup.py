"""Opening a Toolkit for a server or a command: one line that names the cause when it cannot be done."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from flora_mcp.api.errors import APIError, APIStatusError, FloraError
from flora_mcp.config import Settings
from flora_mcp.core.toolkit import Toolkit

__all__ = ["StartupError", "catalog_failure", "open_toolkit"]


class StartupError(Exception):
    """The server cannot start; its message is the one line the user sees."""


def catalog_failure(settings: Settings, exc: BaseException) -> StartupError:
    """The one line that says why the catalog could not be loaded."""
    if isinstance(exc, StartupError):
        return exc  # already that line (a child process's load: core/catalog_process.py)
    where = f"cannot load the FLORA technique catalog from {settings.base_url}"
    if isinstance(exc, APIStatusError):
        hint = {"unauthorized": " Check FLORA_API_KEY.", "invalid_api_key": " Check FLORA_API_KEY."}.get(exc.code, "")
        rid = f", request-id {exc.request_id}" if exc.request_id else ""
        return StartupError(f"{where}: {exc.message} (HTTP {exc.status_code} {exc.code}{rid}).{hint}")
    if isinstance(exc, APIError):
        rid = f" (request-id {exc.request_id})" if exc.request_id else ""
        return StartupError(f"{where}: {exc.message}{rid}")
    return StartupError(f"{where}: {type(exc).__name__}: {exc}")


@asynccontextmanager
async def open_toolkit(settings: Settings) -> AsyncIterator[Toolkit]:
    """A loaded Toolkit, or StartupError with one line that names the cause (never the key)."""
    try:
        toolkit = Toolkit(settings)
    except FloraError as exc:
        raise StartupError(exc.message) from None
    try:
        await toolkit.__aenter__()
    except FloraError as exc:
        raise catalog_failure(settings, exc) from None
    try:
        yield toolkit
    finally:
        await toolkit.aclose()
