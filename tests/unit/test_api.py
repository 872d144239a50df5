"""The read API, through httpx's ASGI transport and the in-memory cache."""

from __future__ import annotations

import argparse
import asyncio
import socket
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from mdhub.api import PROBLEM_JSON, create_app
from mdhub.api import commands as api_commands
from mdhub.cache import GoldenView, HistoryEntry, RedisGoldenCache
from mdhub.settings import ApiSettings, RedisSettings, Settings
from mdhub.testing import InMemoryGoldenCache

DOC = {"golden_id": "g1", "name": "Ann Lee", "email": "ann@example.com", "version": 3}


def get(app: FastAPI, path: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path)

    return asyncio.run(call())


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:mdhub:problem:")
    assert body["title"]
    assert body["detail"]
    return body


def change_event(version: int, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        "golden_id": "g1",
        "entity": "customer",
        "version": version,
        "status": "active",
        "changed": list(after),
        "before": before,
        "after": after,
        "cause": {
            "kind": "source_change",
            "id": f"c{version}",
            "source": "crm",
            "source_key": "C-1",
        },
        "occurred_at": f"2026-01-0{version}T12:00:00Z",
    }


HISTORY = [
    change_event(1, {"name": None, "city": None}, {"name": "Ann Lee", "city": "Oslo"}),
    change_event(2, {"city": "Oslo", "phone": None}, {"city": "Bergen", "phone": "+4799999999"}),
    change_event(3, {"phone": "+4799999999"}, {"phone": None}),
]


@pytest.fixture
def cache() -> InMemoryGoldenCache:
    cache = InMemoryGoldenCache()
    cache.apply_golden("customer", [GoldenView("g1", 3, DOC, (("crm", "C-1"), ("web", "a/b")))])
    cache.apply_history("customer", [HistoryEntry("g1", e["version"], e) for e in HISTORY])
    return cache


@pytest.fixture
def app(cache: InMemoryGoldenCache) -> FastAPI:
    return create_app(cache, ["customer", "product"])


def test_golden_record(app: FastAPI) -> None:
    response = get(app, "/v1/customer/golden/g1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == DOC


def test_unknown_golden_id_is_a_404_problem(app: FastAPI) -> None:
    body = assert_problem(get(app, "/v1/customer/golden/nope"), 404)
    assert body["type"] == "urn:mdhub:problem:not-found"
    assert "nope" in body["detail"]
    assert body["instance"] == "/v1/customer/golden/nope"


def test_unknown_entity_is_a_404_problem_naming_the_known_ones(app: FastAPI) -> None:
    body = assert_problem(get(app, "/v1/supplier/golden/g1"), 404)
    assert body["type"] == "urn:mdhub:problem:unknown-entity"
    assert "customer, product" in body["detail"]
    assert body["known_entities"] == ["customer", "product"]
    assert_problem(get(app, "/v1/supplier/xref/crm/C-1"), 404)


def test_xref_lookup(app: FastAPI) -> None:
    response = get(app, "/v1/customer/xref/crm/C-1")
    assert response.status_code == 200
    assert response.json() == {
        "entity": "customer",
        "source": "crm",
        "source_key": "C-1",
        "golden_id": "g1",
    }


def test_xref_source_key_may_contain_a_slash(app: FastAPI) -> None:
    response = get(app, "/v1/customer/xref/web/a/b")
    assert response.status_code == 200
    assert response.json()["golden_id"] == "g1"


def test_unknown_xref_is_a_404_problem(app: FastAPI) -> None:
    body = assert_problem(get(app, "/v1/customer/xref/crm/C-404"), 404)
    assert "crm:C-404" in body["detail"]


def test_unknown_route_is_a_404_problem(app: FastAPI) -> None:
    assert_problem(get(app, "/v2/nothing"), 404)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/customer/golden/g1",
        "/v1/customer/golden/g1?version=1",
        "/v1/customer/golden/g1/history",
        "/v1/customer/xref/crm/C-1",
        "/readyz",
    ],
)
def test_redis_down_is_a_503_problem_with_retry_after(
    app: FastAPI, cache: InMemoryGoldenCache, path: str
) -> None:
    cache.available = False
    response = get(app, path)
    body = assert_problem(response, 503)
    assert body["title"] == "Redis unavailable"
    assert body["retryable"] is True
    assert body["type"] == "urn:mdhub:problem:redis-unavailable"
    assert response.headers["retry-after"] == "5"
    assert "Traceback" not in response.text


def test_the_api_recovers_when_redis_is_back(app: FastAPI, cache: InMemoryGoldenCache) -> None:
    cache.available = False
    assert get(app, "/v1/customer/golden/g1").status_code == 503
    cache.available = True
    assert get(app, "/v1/customer/golden/g1").status_code == 200


def test_healthz_does_not_need_redis(app: FastAPI, cache: InMemoryGoldenCache) -> None:
    cache.available = False
    response = get(app, "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_when_redis_answers(app: FastAPI) -> None:
    response = get(app, "/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_an_unexpected_error_is_a_500_problem_without_internals() -> None:
    class Broken(InMemoryGoldenCache):
        def get_golden(self, entity: str, golden_id: str) -> dict[str, Any] | None:
            raise RuntimeError("secret internals")

    app = create_app(Broken(), ["customer"])

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/v1/customer/golden/g1")

    response = asyncio.run(call())
    assert_problem(response, 500)
    assert "secret" not in response.text


def test_openapi_documents_the_endpoints(app: FastAPI) -> None:
    spec = get(app, "/openapi.json").json()
    golden = spec["paths"]["/v1/{entity}/golden/{golden_id}"]["get"]
    assert golden["tags"] == ["golden records"]
    assert golden["summary"] == "Get a golden record"
    assert PROBLEM_JSON in golden["responses"]["503"]["content"]
    assert "/v1/{entity}/xref/{source}/{source_key}" in spec["paths"]
    assert {p["name"] for p in golden["parameters"]} == {"entity", "golden_id", "version"}
    history = spec["paths"]["/v1/{entity}/golden/{golden_id}/history"]["get"]
    assert history["summary"] == "List the versions of a golden record"
    assert history["tags"] == ["history"]
    assert {p["name"] for p in history["parameters"]} == {
        "entity",
        "golden_id",
        "limit",
        "before_version",
    }
    assert PROBLEM_JSON in history["responses"]["404"]["content"]
    assert PROBLEM_JSON in history["responses"]["503"]["content"]
    assert "HistoryPage" in spec["components"]["schemas"]
    assert get(app, "/docs").status_code == 200


# --- history and past versions -----------------------------------------------------------------


def test_history_lists_every_version_newest_first(app: FastAPI) -> None:
    response = get(app, "/v1/customer/golden/g1/history")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "entity": "customer",
        "golden_id": "g1",
        "items": list(reversed(HISTORY)),
        "next_before_version": None,
    }


def test_history_pages_with_before_version(app: FastAPI) -> None:
    first = get(app, "/v1/customer/golden/g1/history?limit=2").json()
    assert [e["version"] for e in first["items"]] == [3, 2]
    assert first["next_before_version"] == 2
    second = get(app, "/v1/customer/golden/g1/history?limit=2&before_version=2").json()
    assert [e["version"] for e in second["items"]] == [1]
    assert second["next_before_version"] is None
    exact = get(app, "/v1/customer/golden/g1/history?limit=3").json()
    assert exact["next_before_version"] is None  # nothing older than the three
    past_the_end = get(app, "/v1/customer/golden/g1/history?before_version=1")
    assert past_the_end.status_code == 200
    assert past_the_end.json()["items"] == []


def test_history_of_an_unknown_record_is_a_404_problem(app: FastAPI) -> None:
    body = assert_problem(get(app, "/v1/customer/golden/nope/history"), 404)
    assert body["type"] == "urn:mdhub:problem:not-found"
    assert "nope" in body["detail"]
    assert_problem(get(app, "/v1/customer/golden/nope/history?before_version=3"), 404)
    assert_problem(get(app, "/v1/supplier/golden/g1/history"), 404)


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=501", "limit=x", "before_version=0", "before_version=-1"]
)
def test_history_refuses_bad_paging_with_a_422_problem(app: FastAPI, query: str) -> None:
    body = assert_problem(get(app, f"/v1/customer/golden/g1/history?{query}"), 422)
    assert body["type"] == "urn:mdhub:problem:invalid-request"


def test_golden_record_as_of_a_version(app: FastAPI) -> None:
    first = get(app, "/v1/customer/golden/g1?version=1")
    assert first.status_code == 200
    assert first.json() == {
        "golden_id": "g1",
        "entity": "customer",
        "version": 1,
        "status": "active",
        "occurred_at": "2026-01-01T12:00:00Z",
        "attributes": {"city": "Oslo", "name": "Ann Lee"},
    }
    second = get(app, "/v1/customer/golden/g1?version=2").json()
    assert second["attributes"] == {"city": "Bergen", "name": "Ann Lee", "phone": "+4799999999"}
    third = get(app, "/v1/customer/golden/g1?version=3").json()
    assert third["attributes"] == {"city": "Bergen", "name": "Ann Lee"}
    assert third["occurred_at"] == "2026-01-03T12:00:00Z"
    # without `version` the endpoint is unchanged: the current golden document
    assert get(app, "/v1/customer/golden/g1").json() == DOC


def test_a_version_that_does_not_exist_is_a_404_problem(app: FastAPI) -> None:
    body = assert_problem(get(app, "/v1/customer/golden/g1?version=4"), 404)
    assert body["version"] == 4
    assert "version 4" in body["detail"]
    assert_problem(get(app, "/v1/customer/golden/nope?version=1"), 404)
    assert_problem(get(app, "/v1/customer/golden/g1?version=0"), 422)


# --- the `mdhub api` command ------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mdhub")
    api_commands.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


def test_api_subcommand_options() -> None:
    args = parse("api", "--host", "0.0.0.0", "--port", "8123")
    assert (args.host, args.port, args.handler) == ("0.0.0.0", 8123, api_commands.run_api)
    assert (parse("api").host, parse("api").port) == (None, None)


def test_api_subcommand_refuses_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("api", "--port", "70000")
    assert "1..65535" in capsys.readouterr().err


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    yield port


def test_run_api_starts_even_when_redis_is_down(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], closed_port: int
) -> None:
    model = types.SimpleNamespace(entities={"customer": object(), "product": object()})
    loaded: list[Path] = []

    def fake_load_model(path: Path) -> Any:
        loaded.append(path)
        return model

    monkeypatch.setattr("mdhub.modelfile.load_model", fake_load_model)
    served: dict[str, Any] = {}

    def fake_run(app: FastAPI, **kwargs: Any) -> None:
        served.update(kwargs, app=app)
        served["golden"] = get(app, "/v1/customer/golden/g1")
        served["unknown"] = get(app, "/v1/supplier/golden/g1")

    monkeypatch.setattr("uvicorn.run", fake_run)
    settings = Settings(
        model_file=Path("model.yaml"),
        redis=RedisSettings(url=f"redis://127.0.0.1:{closed_port}/0", socket_timeout_s=0.5),
        api=ApiSettings(host="127.0.0.1", port=8000),
    )

    assert api_commands.run_api(parse("api", "--port", "8123"), settings) == 0

    assert loaded == [Path("model.yaml")]
    assert (served["host"], served["port"]) == ("127.0.0.1", 8123)
    assert served["golden"].status_code == 503
    assert served["golden"].headers["retry-after"]
    assert served["unknown"].status_code == 404
    out, err = capsys.readouterr()
    assert "http://127.0.0.1:8123" in out
    assert "http://127.0.0.1:8123/docs" in out
    assert f"127.0.0.1:{closed_port}" in err
    assert "503" in err


def test_redis_cache_from_url_refuses_a_bad_url() -> None:
    from mdhub.errors import ConfigError

    with pytest.raises(ConfigError, match="MDHUB_REDIS__URL"):
        RedisGoldenCache.from_url("http://nowhere", "mdhub")
