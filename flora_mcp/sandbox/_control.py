"""The `/_sandbox/...` control routes: fault injection, latency, the request log and the callbacks sent, over HTTP.

Mounted only when `SandboxConfig.enable_control` is true; they need no API key and are never recorded or faulted.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flora_mcp.sandbox._errors import FieldError, SandboxError
from flora_mcp.sandbox._http import read_json_object, state_of

__all__ = ["control_routes"]

_FAULT_FIELDS = ("route", "kind", "count", "status", "code", "seconds", "when", "retry_after", "message")


async def inject_fault(request: Request) -> Response:
    body = await read_json_object(request)
    unknown = sorted(set(body) - set(_FAULT_FIELDS))
    if unknown or not isinstance(body.get("route"), str):
        raise SandboxError.validation(
            [FieldError(name, "Unknown field") for name in unknown] or [FieldError("route", "Required")]
        )
    options: dict[str, Any] = {key: value for key, value in body.items() if key != "route"}
    try:
        fault = state_of(request).faults.inject(body["route"], **options)
    except (TypeError, ValueError) as exc:
        raise SandboxError.validation([FieldError("fault", str(exc))]) from exc
    return JSONResponse(fault.to_json(), status_code=201)


async def clear_faults(request: Request) -> Response:
    state_of(request).faults.clear()
    return Response(status_code=204)


async def list_faults(request: Request) -> Response:
    return JSONResponse({"faults": [fault.to_json() for fault in state_of(request).faults.pending]})


async def set_latency(request: Request) -> Response:
    body = await read_json_object(request)
    seconds = body.get("seconds")
    if not isinstance(seconds, int | float) or seconds < 0:
        raise SandboxError.validation([FieldError("seconds", "Must be a number >= 0")])
    state_of(request).latency = float(seconds)
    return JSONResponse({"latency": float(seconds)})


async def list_requests(request: Request) -> Response:
    return JSONResponse({"requests": [record.to_json() for record in state_of(request).requests]})


async def list_deliveries(request: Request) -> Response:
    return JSONResponse({"deliveries": [d.to_json() for d in state_of(request).webhooks.deliveries]})


def control_routes() -> list[Route]:
    return [
        Route("/_sandbox/faults", inject_fault, methods=["POST"]),
        Route("/_sandbox/faults", clear_faults, methods=["DELETE"]),
        Route("/_sandbox/faults", list_faults, methods=["GET"]),
        Route("/_sandbox/latency", set_latency, methods=["PUT", "POST"]),
        Route("/_sandbox/requests", list_requests, methods=["GET"]),
        Route("/_sandbox/webhooks", list_deliveries, methods=["GET"]),
    ]
