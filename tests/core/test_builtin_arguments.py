"""flora-mcp's own tools check their arguments against the schemas they are listed with, as technique tools do.

Each bad argument is refused with the field named and what it must be, before anything is asked of FLORA, and nothing
is logged as a failure of flora-mcp's (no traceback): limit=1e309 (infinity), a status that is a list or an object,
a 100 KB run_id (longer than the schema's maxLength), wait_seconds NaN or infinite, in full and in compact mode.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import pytest

from flora_mcp.core.builtin import MAX_RUN_ID, run_tools
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from tests.support import mcp_client, polls, settings_for

BAD: list[Any] = [
    pytest.param("flora_list_runs", {"limit": math.inf}, "limit", "must be a finite number, got inf", id="limit-1e309"),
    pytest.param("flora_list_runs", {"limit": 2.5}, "limit", "must be of type integer, got float", id="limit-half"),
    pytest.param("flora_list_runs", {"limit": 0}, "limit", "must be >= 1, got 0", id="limit-zero"),
    pytest.param("flora_list_runs", {"limit": 10**400}, "limit", "must be <= 100, got 1" + "0" * 36 + "...",
                 id="limit-huge-int"),
    pytest.param("flora_list_runs", {"status": ["completed"]}, "status", "must be of type string, got list",
                 id="status-list"),
    pytest.param("flora_list_runs", {"status": {"$ne": "x"}}, "status", "must be of type string, got dict",
                 id="status-object"),
    pytest.param("flora_list_runs", {"status": "done"}, "status", "must be one of pending, running, completed, "
                 "failed, unknown, error, submitting", id="status-unknown"),
    pytest.param("flora_list_runs", {"mine": True}, "mine", "unknown input; valid inputs: limit, status",
                 id="unknown-argument"),
    pytest.param("flora_get_run", {"run_id": "r" * 100_000}, "run_id",
                 f"must be at most {MAX_RUN_ID} characters, got 100000", id="run-id-100kb"),
    pytest.param("flora_get_run", {"run_id": 42}, "run_id", "must be of type string, got int", id="run-id-number"),
    pytest.param("flora_get_run", {}, "run_id", "required input is missing", id="run-id-missing"),
    pytest.param("flora_get_run", {"run_id": "   "}, "run_id", "must not be blank", id="run-id-blank"),
    pytest.param("flora_get_run", {"run_id": "run_x", "wait_seconds": math.nan}, "wait_seconds",
                 "must be a finite number, got nan", id="wait-nan"),
    pytest.param("flora_get_run", {"run_id": "run_x", "wait_seconds": math.inf}, "wait_seconds",
                 "must be a finite number, got inf", id="wait-infinity"),
    pytest.param("flora_get_run", {"run_id": "run_x", "wait_seconds": -1}, "wait_seconds", "must be >= 0, got -1",
                 id="wait-negative"),
    pytest.param("flora_get_run", {"run_id": "run_x", "wait_seconds": True}, "wait_seconds",
                 "must be of type number, got bool", id="wait-bool"),
    pytest.param("flora_spend", {"all": 1}, "all", "unknown input; valid inputs: none", id="spend-argument"),
    pytest.param("flora_search_techniques", {"query": ["qr"]}, "query", "must be of type string, got list",
                 id="search-list"),
    pytest.param("flora_describe_technique", {"technique": {"slug": "qr"}}, "technique",
                 "must be of type string, got dict", id="describe-object"),
    pytest.param("flora_run_technique", {"technique": "qr-code-generator", "inputs": "content=x"}, "inputs",
                 "must be of type object, got str", id="run-inputs-string"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("tool", "args", "field", "message"), BAD)
async def test_a_bad_argument_is_refused_by_name_before_flora_is_asked(
        sandbox: Sandbox, toolkit: Toolkit, caplog: pytest.LogCaptureFixture, tool: str, args: dict[str, Any],
        field: str, message: str) -> None:
    caplog.set_level(logging.DEBUG, logger="flora_mcp")
    before = len(sandbox.requests)
    result = await toolkit.call(tool, args)
    assert result.status == "invalid" and result.error_code == "invalid_arguments", result.summary()
    assert [(f.field, f.message) for f in result.error_fields][:1] == [(field, message)], result.error_fields
    assert field in (result.error_message or "") and message in result.summary()
    assert len(sandbox.requests) == before  # refused here: nothing reached FLORA
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.anyio
async def test_over_mcp_the_same_refusals_arrive_as_tool_errors(sandbox: Sandbox, toolkit: Toolkit,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="flora_mcp")
    async with mcp_client(toolkit) as client:
        long_id = await client.call_tool("flora_get_run", {"run_id": "r" * 100_000})
        listed = await client.call_tool("flora_list_runs", {"status": ["completed", "failed"], "limit": 1e300})
    for result in (long_id, listed):
        assert result.is_error and (result.structured_content or {})["status"] == "invalid"
    fields = [f["field"] for f in (listed.structured_content or {})["error_fields"]]
    assert fields == ["limit", "status"]
    assert len(json.dumps(long_id.model_dump(mode="json"))) < 5_000  # the 100 KB is not sent back
    assert polls(sandbox) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.anyio
async def test_good_arguments_still_work_and_a_whole_float_is_a_whole_number(sandbox: Sandbox,
                                                                             toolkit: Toolkit) -> None:
    done = await toolkit.call("qr-code-generator", {"content": "valid"})
    assert done.status == "completed"
    listed = await toolkit.call("flora_list_runs", {"limit": 1.0, "status": "completed"})
    assert listed.status == "completed" and listed.data is not None and listed.data["count"] == 1
    again = await toolkit.call("flora_get_run", {"run_id": f"  {done.run_id} ", "wait_seconds": 0})
    assert again.status == "completed" and again.run_id == done.run_id
    assert (await toolkit.call("flora_spend", {})).status == "completed"


@pytest.mark.anyio
async def test_wait_seconds_above_flora_max_wait_is_refused_as_the_schema_says(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, max_wait=5)) as kit:
        schema = next(t for t in run_tools(5) if t["name"] == "flora_get_run")["inputSchema"]
        assert schema["properties"]["wait_seconds"]["maximum"] == 5
        result = await kit.call("flora_get_run", {"run_id": "run_x", "wait_seconds": 6})
    assert result.status == "invalid" and result.error_fields[0].message == "must be <= 5, got 6"


@pytest.mark.anyio
async def test_in_compact_mode_the_short_schemas_are_the_ones_checked(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, tools_mode="compact")) as kit:
        listed = {t["name"]: t for t in kit.tool_definitions()}
        assert "minimum" not in listed["flora_list_runs"]["inputSchema"]["properties"]["limit"]
        zero = await kit.call("flora_list_runs", {"limit": 0})  # the short form has no lower bound: taken as 1
        long_id = await kit.call("flora_get_run", {"run_id": "r" * 100_000})
        nan = await kit.call("flora_get_run", {"run_id": "run_x", "wait_seconds": math.nan})
    assert zero.status == "completed"
    assert long_id.status == "invalid" and long_id.error_fields[0].field == "run_id"
    assert nan.status == "invalid" and nan.error_fields[0].message == "must be a finite number, got nan"
