"""GET /techniques and GET /techniques/{ref}: paging, summary and full items, search, ids, access."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sandbox_support import Api, client_for

from flora_mcp.sandbox import Account, SandboxConfig, serve_sandbox
from flora_mcp.sandbox._catalog import technique_id_for
from flora_mcp.sandbox._techniques import builtin_techniques

pytestmark = pytest.mark.anyio


async def walk(client: httpx.AsyncClient, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every item of every page, and how many pages it took."""
    items: list[dict[str, Any]] = []
    cursors: set[str] = set()
    pages = 0
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/techniques", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        items.extend(body["techniques"])
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return items, pages
        assert isinstance(cursor, str)
        assert cursor not in cursors
        cursors.add(cursor)


async def test_default_pages_are_small_and_walk_the_whole_catalog(shared_api: Api) -> None:
    first = (await shared_api.client.get("/techniques")).json()
    assert len(first["techniques"]) == 3
    assert first["meta"]["limit"] == 3
    items, pages = await walk(shared_api.client)
    expected = builtin_techniques()
    assert [item["technique_id"] for item in items] == [t.technique_id for t in expected]
    assert pages == -(-len(expected) // 3)


async def test_list_mixes_summary_and_full_items(shared_api: Api) -> None:
    items, _ = await walk(shared_api.client, limit=100)
    full = [item for item in items if "inputs" in item]
    summary = [item for item in items if "inputs" not in item]
    assert full and summary
    for item in summary:
        assert set(item) <= {"technique_id", "slug", "name"}
    for item in full:
        assert {"technique_id", "name", "description", "run_cost", "inputs", "outputs"} <= set(item)


async def test_a_technique_without_slug_is_reachable_by_its_id(shared_api: Api) -> None:
    items, _ = await walk(shared_api.client, limit=100)
    no_slug = [item for item in items if "slug" not in item]
    assert len(no_slug) == 1
    technique_id = no_slug[0]["technique_id"]
    assert technique_id.startswith("tech_")
    detail = await shared_api.technique(technique_id)
    assert detail["name"] == "Soft Focus"
    assert "slug" not in detail
    assert detail["inputs"][0]["type"] == "imageUrl"


async def test_retrieve_by_slug_and_by_id_answer_the_same_full_schema(shared_api: Api) -> None:
    by_slug = await shared_api.technique("cctv-cam")
    by_id = await shared_api.technique(by_slug["technique_id"])
    assert by_slug == by_id
    assert by_slug["run_cost"] == 0.05
    assert by_slug["inputs"] == [
        {"id": "input_image", "name": "Input Image", "type": "imageUrl", "description": "The image to transform"}
    ]
    assert by_slug["outputs"][0]["specified_aspect_ratio"] == "4:3"


async def test_technique_ids_derive_from_slugs_so_they_survive_restarts(shared_api: Api) -> None:
    detail = await shared_api.technique("qr-code-generator")
    assert detail["technique_id"] == technique_id_for("qr-code-generator")


async def test_schemas_carry_optional_and_specified_fields(shared_api: Api) -> None:
    grade = await shared_api.technique("color-grade-image")
    assert {port["id"]: port.get("optional", False) for port in grade["inputs"]} == {
        "input_image": False,
        "grade": True,
    }
    tone = await shared_api.technique("tone-generator")
    assert tone["outputs"][0]["specified_duration"] == 2


@pytest.mark.parametrize(
    ("limit", "expected"),
    [pytest.param("5", 5, id="asked"), pytest.param("1000", 100, id="capped"), pytest.param(None, 3, id="default")],
)
async def test_limit_is_honoured_and_capped(shared_api: Api, limit: str | None, expected: int) -> None:
    params = {"limit": limit} if limit else {}
    body = (await shared_api.client.get("/techniques", params=params)).json()
    assert body["meta"]["limit"] == expected
    assert len(body["techniques"]) == min(expected, len(builtin_techniques()))


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "many"}, {"cursor": "not-a-cursor"}, {"cursor": "cjoz"}])
async def test_bad_paging_parameters_are_validation_errors(shared_api: Api, params: dict[str, str]) -> None:
    response = await shared_api.client.get("/techniques", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "input_validation_error"
    assert response.json()["error"]["fields"][0]["field"] in params


@pytest.mark.parametrize(
    ("query", "slugs"),
    [
        pytest.param("IMAGE", None, id="case-insensitive"),
        pytest.param("qr-code", ["qr-code-generator"], id="slug"),
        pytest.param("surveillance", ["cctv-cam"], id="description"),
        pytest.param("zzz-nothing", [], id="none"),
    ],
)
async def test_query_filters_by_slug_name_or_description(shared_api: Api, query: str, slugs: list[str] | None) -> None:
    items, _ = await walk(shared_api.client, query=query)
    if slugs is None:
        assert len(items) >= 5
        for item in items:
            detail = await shared_api.technique(item["technique_id"])
            text = " ".join([detail.get("slug", ""), detail["name"], detail["description"]])
            assert "image" in text.lower()
    else:
        assert [item.get("slug") for item in items] == slugs


async def test_unknown_technique_is_not_found(shared_api: Api) -> None:
    response = await shared_api.client.get("/techniques/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert response.headers["request-id"].startswith("req_")


async def test_extra_synthetic_techniques_build_big_catalogs() -> None:
    async with serve_sandbox(SandboxConfig(extra_techniques=120)) as box, client_for(box) as client:
        items, pages = await walk(client, limit=50)
        synthetic = [item for item in items if item.get("slug", "").startswith("synthetic-")]
        assert len(synthetic) == 120
        assert synthetic[0]["slug"] == "synthetic-0001"
        assert pages == -(-(120 + len(builtin_techniques())) // 50)
        assert "inputs" in synthetic[1] and "inputs" not in synthetic[0]
        api = Api(box, client)
        run = await api.run("synthetic-0042", {"prompt": "hello"})
        assert await api.text(run["outputs"][0]["url"]) == "HELLO"


async def test_an_allow_list_hides_other_techniques_and_forbids_them() -> None:
    config = SandboxConfig(keys={"sk_a": Account(techniques=["qr-code-generator", technique_id_for("cctv-cam")])})
    async with serve_sandbox(config) as box, client_for(box) as client:
        items, _ = await walk(client)
        assert [item["slug"] for item in items] == ["cctv-cam", "qr-code-generator"]
        response = await client.get("/techniques/split-text")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
