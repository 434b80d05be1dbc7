"""The client's MCP roots: the folders a local client lets flora-mcp read files from, asked when a call needs them.

Asked with `roots/list` only when a call names a local file (never at start-up, never for https URLs), and only of a
client that declared the roots capability. A client that declares none, or cannot answer, leaves the choice to
FLORA_INPUT_DIRS (else the home folder).
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import mcp.types as types

from flora_mcp.core.runs import RootsProvider

__all__ = ["ROOTS_TIMEOUT", "roots_of"]

log = logging.getLogger("flora_mcp.server.roots")

ROOTS_TIMEOUT = 10.0
"""Seconds a client has to answer `roots/list`."""


def roots_of(session: Any) -> RootsProvider:
    """A provider of the roots of the client on `session` (a `ServerSession`)."""

    async def roots() -> list[str] | None:
        capabilities = getattr(session, "client_capabilities", None)
        if capabilities is None or capabilities.roots is None or not getattr(session, "can_send_request", True):
            return None
        try:
            with anyio.fail_after(ROOTS_TIMEOUT):
                answer = await session.send_request(types.ListRootsRequest(), types.ListRootsResult)
        except Exception as exc:  # a client that declared roots but cannot list them: as if it had none
            log.warning("the client did not answer roots/list (%s); local files follow FLORA_INPUT_DIRS", exc)
            return None
        uris = [str(root.uri) for root in answer.roots]
        log.info("the client's roots: %s", ", ".join(uris) or "none")
        return uris

    return roots
