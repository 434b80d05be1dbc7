"""Run routes: create and poll runs on the nested (`/techniques/{ref}/runs`) and top-level (`/runs`) routes,
and list a key's runs newest first."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from flora_mcp.sandbox._catalog import decode_cursor, encode_cursor
from flora_mcp.sandbox._errors import FieldError, SandboxError
from flora_mcp.sandbox._http import (
    authenticate,
    idempotency_key_of,
    origin_of,
    query_limit,
    read_json_object,
    state_of,
)
from flora_mcp.sandbox._routes import find_technique
from flora_mcp.sandbox._state import body_fingerprint
from flora_mcp.sandbox._validation import validate_callback_url, validate_input_list, validate_input_map

__all__ = ["create_run", "create_technique_run", "get_run", "get_technique_run", "list_technique_runs"]


async def create_technique_run(request: Request) -> Response:
    api_key, account = authenticate(request)
    state = state_of(request)
    ref = request.path_params["technique"]
    body = await read_json_object(request)
    technique = find_technique(state, account, ref)
    key = idempotency_key_of(request, body)
    fingerprint = body_fingerprint(technique.technique_id, body)
    state.check_idempotency(api_key, key, fingerprint)
    mode = body.get("mode", "async")
    inputs = validate_input_list(technique, body.get("inputs"))
    if mode != "async":
        raise SandboxError.validation([FieldError("mode", "Only async mode is supported")])
    callback_url = validate_callback_url(body.get("callback_url"))
    state.check_credits(api_key, technique.run_cost)
    run = state.start_run(
        technique=technique,
        api_key=api_key,
        inputs=inputs,
        idempotency_key=key,
        fingerprint=fingerprint,
        poll_path=f"techniques/{ref}/runs/{{run_id}}",
        origin=origin_of(request),
        callback_url=callback_url,
    )
    data = run.to_json(origin_of(request))
    data["estimated_seconds"] = state.estimated_seconds(technique)
    return JSONResponse(data)


async def create_run(request: Request) -> Response:
    api_key, account = authenticate(request)
    state = state_of(request)
    body = await read_json_object(request)
    technique_id = body.get("technique_id")
    workspace_id = body.get("workspace_id")
    errors = []
    if not isinstance(technique_id, str) or not technique_id.startswith("tech_"):
        errors.append(FieldError("technique_id", "Required: a technique id starting with tech_"))
    if not isinstance(workspace_id, str) or not workspace_id.startswith("ws_"):
        errors.append(FieldError("workspace_id", "Required: a workspace id starting with ws_"))
    if errors:
        raise SandboxError.validation(errors)
    assert isinstance(technique_id, str)
    if workspace_id not in account.workspaces:
        raise SandboxError(403, "forbidden", f"This API key has no access to workspace {workspace_id!r}.")
    technique = find_technique(state, account, technique_id)
    key = idempotency_key_of(request, body)
    fingerprint = body_fingerprint(technique.technique_id, body)
    state.check_idempotency(api_key, key, fingerprint)
    inputs = validate_input_map(technique, body.get("inputs"))
    callback_url = validate_callback_url(body.get("callback_url"))
    state.check_credits(api_key, technique.run_cost)
    run = state.start_run(
        technique=technique,
        api_key=api_key,
        inputs=inputs,
        idempotency_key=key,
        fingerprint=fingerprint,
        poll_path="runs/{run_id}",
        origin=origin_of(request),
        callback_url=callback_url,
    )
    origin = origin_of(request)
    return JSONResponse(
        {
            "run_id": run.run_id,
            "type": "technique",
            "charged_cost": run.charged_cost,
            "estimated_seconds": state.estimated_seconds(technique),
            "poll_url": f"{origin}/api/v1/{run.poll_path}",
            "technique": {"name": technique.name, "technique_id": technique.technique_id},
        }
    )


async def get_technique_run(request: Request) -> Response:
    api_key, account = authenticate(request)
    state = state_of(request)
    technique = find_technique(state, account, request.path_params["technique"])
    run = state.run_for(api_key, request.path_params["run_id"])
    if run is None or run.technique is not technique:
        raise SandboxError(404, "not_found", "Run not found.")
    return JSONResponse(run.to_json(origin_of(request)))


async def get_run(request: Request) -> Response:
    api_key, _ = authenticate(request)
    run = state_of(request).run_for(api_key, request.path_params["run_id"])
    if run is None:
        raise SandboxError(404, "not_found", "Run not found.")
    return JSONResponse(run.to_json(origin_of(request)))


async def list_technique_runs(request: Request) -> Response:
    api_key, account = authenticate(request)
    state = state_of(request)
    params = request.query_params
    limit = query_limit(request, state.config.runs_page_size, state.config.max_page_size)
    workspace_id = params.get("workspace_id")
    if workspace_id is not None and workspace_id not in account.workspaces:
        raise SandboxError(403, "forbidden", f"This API key has no access to workspace {workspace_id!r}.")
    runs = [run for run in reversed(state.runs.values()) if run.api_key == api_key]
    if "technique_id" in params:
        technique = state.catalog.find(params["technique_id"])
        runs = [run for run in runs if run.technique is technique]
    if "status" in params:
        runs = [run for run in runs if run.status == params["status"]]
    if "cursor" in params:
        before = decode_cursor("r", params["cursor"])
        runs = [run for run in runs if run.sequence < before]
    page = runs[:limit]
    next_cursor = encode_cursor("r", page[-1].sequence) if len(runs) > limit else None
    origin = origin_of(request)
    items: list[dict[str, Any]] = [{**run.to_json(origin), "technique_id": run.technique_id} for run in page]
    return JSONResponse({"technique_runs": items, "meta": {"limit": limit, "next_cursor": next_cursor}})
