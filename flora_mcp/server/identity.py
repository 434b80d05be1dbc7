"""Who flora-mcp says it is, and how long clients may keep its answers: defined once for both protocol eras.

The same identity goes into `initialize` (2025-11-25 and before) and into `server/discover` and the serverInfo stamp
of every result (2026-07-28). Cache hints (`ttlMs`/`cacheScope`) exist only on 2026-07-28; older sessions never see
them. The icons are data URIs: a client shows them without fetching anything.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from flora_mcp.core.tool_names import GET_RUN

if TYPE_CHECKING:
    import mcp.types
    from mcp.server import CacheHint
    from mcp.server.caching import CacheableMethod

    from flora_mcp.config import Settings

__all__ = ["DESCRIPTION", "INSTRUCTIONS", "NAME", "TITLE", "WEBSITE", "cache_hints", "icons", "tools_list_ttl_ms"]

NAME = "flora-mcp"
TITLE = "FLORA"
DESCRIPTION = ("Every FLORA technique as a typed tool: one call runs it, waits with progress, and returns the output "
               "URLs and what the run cost.")
WEBSITE = "https://flora.ai"
INSTRUCTIONS = (
    "Each FLORA technique is a tool: call it once with its inputs (URLs for media) and it waits for the run and "
    f"returns the output URLs and the cost. Runs are paid. If a result says status running, call {GET_RUN} with "
    "its run_id instead of calling the technique again. A call may ask the person to confirm its price first; if "
    "they decline, nothing was spent: do not call it again unasked."
)

_PNG_48 = (
    "iVBORw0KGgoAAAANSUhEUgAAADAAAAAwCAYAAABXAvmHAAABBElEQVR42u2ZTRaCMAyESU/mQTyHK13JynNwEG+GWx7SP2fSIkyWfa9hvqRpSjsM"
    "Mhlk5uX4fp3n9dg4me0eYEu4J4i1FO4BEnqJR+bRAXpa6BV91vxzZ4CxhlE/qgEBnB3AkEIbJzNGIcf8lHRq89whWJYCsT0LLwExL/HP2+Vr7PF6"
    "0yFcinhLfGqcuguh0c+JRCHW+kKLyHtmIrCiXysKgVjqVCcWgABItwS1TQppakud1AyUimJ05CgAeleTE4eKb3KUiIlkRv7Yp9F/+h8IJZNjDliX"
    "tCn/uW9AApjZ+TUY6sQCEECHwmP60RJCs4DOVwaQKDJqSO/ENSAeL/Wy3vYBmF6CR7jIQFIAAAAASUVORK5CYII="
)
_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 48"><g fill="#7c5cff">'
    '<circle cx="24" cy="12" r="9"/><circle cx="36" cy="24" r="9"/><circle cx="24" cy="36" r="9"/>'
    '<circle cx="12" cy="24" r="9"/></g><circle cx="24" cy="24" r="6" fill="#ffd23f"/></svg>'
)

TOOLS_LIST_TTL_MS = 5 * 60 * 1000
"""How long a 2026 client may reuse `tools/list`; a change is announced on listen streams before that anyway."""
DISCOVER_TTL_MS = 60 * 60 * 1000
TEMPLATES_TTL_MS = 24 * 60 * 60 * 1000


def icons() -> list[mcp.types.Icon]:
    """The server's icon: a 48 px PNG (every client must take PNG) and the same flower as SVG."""
    import mcp.types as types

    svg = base64.b64encode(_SVG.encode()).decode()
    return [types.Icon(src=f"data:image/png;base64,{_PNG_48}", mime_type="image/png", sizes=["48x48"]),
            types.Icon(src=f"data:image/svg+xml;base64,{svg}", mime_type="image/svg+xml", sizes=["any"])]


def cache_hints() -> dict[CacheableMethod, CacheHint]:
    """Server-wide hints: discovery and the run template are the same for everyone and rarely change; the run
    resources and the spend change with every call, so they are never fresh; `tools/list` sets its own
    (`tools_list_ttl_ms`), private because each key may see another catalog."""
    from mcp.server import CacheHint

    return {
        "server/discover": CacheHint(ttl_ms=DISCOVER_TTL_MS, scope="public"),
        "resources/templates/list": CacheHint(ttl_ms=TEMPLATES_TTL_MS, scope="public"),
        "resources/list": CacheHint(ttl_ms=0, scope="private"),
        "resources/read": CacheHint(ttl_ms=0, scope="private"),
        "tools/list": CacheHint(ttl_ms=TOOLS_LIST_TTL_MS, scope="private"),
    }


def tools_list_ttl_ms(settings: Settings) -> int:
    """`tools/list` stays fresh for TOOLS_LIST_TTL_MS, or less when the catalog is re-listed more often."""
    if settings.catalog_refresh > 0:
        return min(TOOLS_LIST_TTL_MS, int(settings.catalog_refresh * 1000))
    return TOOLS_LIST_TTL_MS
