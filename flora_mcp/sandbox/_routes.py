"""Read-only routes: the technique catalog, workspaces, and the output/sample files."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from flora_mcp._media import media_type_for_extension
from flora_mcp.sandbox._catalog import Technique
from flora_mcp.sandbox._config import Account
from flora_mcp.sandbox._errors import SandboxError
from flora_mcp.sandbox._http import authenticate, query_limit, state_of
from flora_mcp.sandbox._state import SandboxState

__all__ = ["files", "find_technique", "get_technique", "list_techniques", "list_workspaces"]

_MEDIA_TYPES = {".txt": "text/plain; charset=utf-8", ".png": "image/png", ".wav": "audio/wav"}


def find_technique(state: SandboxState, account: Account, ref: str) -> Technique:
    """The technique a slug or id names; 404 when there is none, 403 when the key may not use it."""
    technique = state.catalog.find(ref)
    if technique is None:
        raise SandboxError(404, "not_found", f"Technique {ref!r} not found.")
    allow = account.techniques
    if allow is not None and technique.slug not in allow and technique.technique_id not in allow:
        raise SandboxError(403, "forbidden", f"This API key may not use technique {ref!r}.")
    return technique


async def list_techniques(request: Request) -> Response:
    _, account = authenticate(request)
    state = state_of(request)
    limit = query_limit(request, state.config.page_size, state.config.max_page_size)
    page = state.catalog.page(
        account.techniques, request.query_params.get("query"), request.query_params.get("cursor"), limit
    )
    items = [t.full_json() if t.full_in_list else t.summary_json() for t in page.items]
    return JSONResponse({"techniques": items, "meta": {"limit": limit, "next_cursor": page.next_cursor}})


async def get_technique(request: Request) -> Response:
    _, account = authenticate(request)
    technique = find_technique(state_of(request), account, request.path_params["technique"])
    return JSONResponse(technique.full_json())


async def list_workspaces(request: Request) -> Response:
    _, account = authenticate(request)
    started = state_of(request).started_at
    workspaces = [{"workspace_id": workspace_id, "name": name, "role": "owner", "created_at": started}
                  for workspace_id, name in account.workspaces.items()]
    return JSONResponse({"workspaces": workspaces})


async def files(request: Request) -> Response:
    """Output and sample files; public like a CDN's media URLs, so no API key is needed."""
    root = state_of(request).files_dir
    if root is None:
        raise SandboxError(404, "not_found")
    base = root.resolve()
    path = (base / request.path_params["path"]).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        raise SandboxError(404, "not_found", "File not found.")
    media_type = _MEDIA_TYPES.get(path.suffix) or media_type_for_extension(path.name) or "application/octet-stream"
    return FileResponse(path, media_type=media_type)
