"""Identity resolution as a steward meets it: merge redirects, match explanations, the review queue
and steward commands, through the API (in-memory cache, recorded commands) and the CLI."""

from __future__ import annotations

import asyncio
import json
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from mdhub.api.app import PROBLEM_JSON, create_app
from mdhub.cache.history import HistoryEntry
from mdhub.cache.views import GoldenView
from mdhub.cli import build_parser, main
from mdhub.commands import steward as steward_command
from mdhub.domain.commands import Action, StewardCommand
from mdhub.errors import KafkaUnavailableError, PublishError
from mdhub.serde.catalog import SchemaCatalog
from mdhub.serde.mapping import command_from_avro
from mdhub.settings import ApiSettings, Settings
from mdhub.stewarding import (
    COMMAND_SCHEMA,
    CommandSender,
    explain_links,
    follow_merges,
    link_reason,
    new_command,
)
from mdhub.testing import CommandRecorder, InMemoryGoldenCache

REPO = Path(__file__).resolve().parents[2]
CATALOG = SchemaCatalog.load(REPO / "schemas")
E = "customer"
T = "2026-01-01T10:00:00Z"


def contribution(
    attribute: str, method: str, weight: float, sim: float | None, detail: str = ""
) -> dict[str, Any]:
    return {
        "attribute": attribute,
        "method": method,
        "similarity": sim,
        "weight": weight,
        "detail": detail,
    }


def link(source: str, key: str, method: str, **extra: Any) -> dict[str, Any]:
    return {
        "source": source,
        "source_key": key,
        "method": method,
        "decided_at": T,
        "score": None,
        "matched_ref": None,
        "blocking_key": None,
        "rule": None,
        "contributions": [],
        "command_id": None,
        "merged_from": None,
        **extra,
    }


def source(name: str, key: str) -> dict[str, Any]:
    return {
        "source": name,
        "source_key": key,
        "source_version": 1,
        "occurred_at": T,
        "change_id": f"c-{key}",
        "deleted": False,
    }


SURVIVOR = {
    "golden_id": "g1",
    "entity": E,
    "version": 4,
    "status": "active",
    "merged_into": None,
    "attributes": {"first_name": "Ann", "last_name": "Lee", "email": "ann@example.com"},
    "sources": [source("crm", "C-1"), source("erp", "E-1"), source("webshop", "W-1")],
    "links": [
        link("crm", "C-1", "created"),
        link(
            "erp",
            "E-1",
            "steward_link",
            matched_ref="crm:C-1",
            command_id="cmd-9",
            merged_from="g2",
        ),
        link(
            "webshop",
            "W-1",
            "matched",
            score=14.2,
            matched_ref="crm:C-1",
            blocking_key="email=ann@example.com",
            contributions=[
                contribution("last_name", "jaro_winkler", 4.0, 1.0),
                contribution("birth_date", "exact", 0.0, None),
                contribution("first_name", "jaro_winkler", 3.1, 0.6, "nickname"),
                contribution("email", "exact", 6.5, 1.0),
                contribution("city", "levenshtein", -1.2, 0.3),
            ],
        ),
    ],
}


def merged(golden_id: str, into: str, version: int = 2) -> dict[str, Any]:
    return {
        "golden_id": golden_id,
        "entity": E,
        "version": version,
        "status": "merged",
        "merged_into": into,
        "attributes": {},
        "sources": [],
        "links": [],
    }


def review(pair_id: str, minute: int, status: str = "open", **extra: Any) -> dict[str, Any]:
    return {
        "pair_id": pair_id,
        "entity": E,
        "status": status,
        "ref": f"crm:R-{pair_id}",
        "golden_id": f"g-{pair_id}",
        "candidate_ref": f"webshop:C-{pair_id}",
        "candidate_golden_id": f"h-{pair_id}",
        "score": 0.0 if status != "open" else 7.5,
        "blocking_key": None if status != "open" else "email=x@example.com",
        "contributions": []
        if status != "open"
        else [contribution("first_name", "jaro_winkler", 2.0, 0.9)],
        "detected_at": f"2026-01-01T10:{minute:02d}:00Z",
        "decided_by": None,
        **extra,
    }


@pytest.fixture
def cache() -> InMemoryGoldenCache:
    cache = InMemoryGoldenCache()
    docs = [
        SURVIVOR,
        merged("g2", "g1"),
        merged("g3", "g2"),  # a chain: g3 -> g2 -> g1
        merged("loop-a", "loop-b"),
        merged("loop-b", "loop-a"),
        merged("orphan", "erased-one"),
    ]
    cache.apply_golden(E, [GoldenView(d["golden_id"], d["version"], d) for d in docs])
    cache.apply_history(
        E,
        [
            HistoryEntry(
                "g2",
                1,
                {
                    "golden_id": "g2",
                    "entity": E,
                    "version": 1,
                    "status": "active",
                    "changed": ["first_name"],
                    "before": {"first_name": None},
                    "after": {"first_name": "Annie"},
                    "cause": {"kind": "source_change", "id": "c1"},
                    "occurred_at": T,
                },
            )
        ],
    )
    cache.apply_reviews(
        E,
        [
            review("p3", 3),
            review("p1", 1),
            review("p2", 2),
            review("done", 0),
            review("done", 30, "accepted", decided_by="cmd-1"),
        ],
    )
    return cache


@pytest.fixture
def commands() -> CommandRecorder:
    return CommandRecorder()


@pytest.fixture
def app(cache: InMemoryGoldenCache, commands: CommandRecorder) -> FastAPI:
    return create_app(cache, [E, "product"], send_command=commands)


def call(app: FastAPI, method: str, path: str, body: Any = None) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            if body is None:
                return await client.request(method, path)
            return await client.request(method, path, json=body)

    return asyncio.run(run())


def get(app: FastAPI, path: str) -> httpx.Response:
    return call(app, "GET", path)


def post(app: FastAPI, path: str, body: Any = None) -> httpx.Response:
    return call(app, "POST", path, body)


def assert_problem(
    response: httpx.Response, status: int, kind: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    if kind is not None:
        assert body["type"] == f"urn:mdhub:problem:{kind}"
    return body


# -- merge redirects ------------------------------------------------------------------------------


def test_a_merged_record_answers_with_its_survivor(app: FastAPI) -> None:
    response = get(app, "/v1/customer/golden/g2")
    assert response.status_code == 200
    assert response.json() == {**SURVIVOR, "redirected_from": "g2"}
    assert response.headers["content-location"] == "/v1/customer/golden/g1"


def test_a_chain_of_merges_is_followed(app: FastAPI) -> None:
    response = get(app, "/v1/customer/golden/g3")
    assert response.status_code == 200
    assert response.json()["golden_id"] == "g1"
    assert response.json()["redirected_from"] == "g3"
    assert response.headers["content-location"] == "/v1/customer/golden/g1"


def test_a_live_record_is_not_redirected(app: FastAPI) -> None:
    response = get(app, "/v1/customer/golden/g1")
    assert response.json() == SURVIVOR
    assert "content-location" not in response.headers


def test_a_past_version_of_a_merged_record_is_not_redirected(app: FastAPI) -> None:
    response = get(app, "/v1/customer/golden/g2?version=1")
    assert response.status_code == 200
    body = response.json()
    assert (body["golden_id"], body["attributes"]) == ("g2", {"first_name": "Annie"})
    assert "content-location" not in response.headers


def test_a_merge_loop_is_a_500_problem(app: FastAPI) -> None:
    body = assert_problem(get(app, "/v1/customer/golden/loop-a"), 500, "merge-chain-too-long")
    assert body["path"] == ["loop-a", "loop-b", "loop-a"]


@pytest.mark.parametrize(("hops", "status"), [(10, 200), (11, 500)])
def test_at_most_ten_merges_are_followed(hops: int, status: int) -> None:
    cache = InMemoryGoldenCache()
    chain = [merged(f"m{i}", f"m{i + 1}") for i in range(hops)]
    last = {**SURVIVOR, "golden_id": f"m{hops}"}
    cache.apply_golden(E, [GoldenView(d["golden_id"], 2, d) for d in [*chain, last]])
    response = get(create_app(cache, [E]), "/v1/customer/golden/m0")
    assert response.status_code == status
    found = follow_merges(cache, E, "m0")
    assert found.too_long is (status == 500)


def test_a_redirect_to_a_record_that_is_gone_is_a_404_naming_it(app: FastAPI) -> None:
    body = assert_problem(get(app, "/v1/customer/golden/orphan"), 404, "not-found")
    assert body["merged_into"] == "erased-one"
    assert "erased-one" in body["detail"]


# -- explanations ---------------------------------------------------------------------------------


def test_explain_names_method_score_block_and_comparators(app: FastAPI) -> None:
    response = get(app, "/v1/customer/golden/g1/explain")
    assert response.status_code == 200
    body = response.json()
    assert (body["golden_id"], body["version"], body["redirected_from"]) == ("g1", 4, None)
    by_ref = {f"{s['source']}:{s['source_key']}": s for s in body["sources"]}
    assert set(by_ref) == {"crm:C-1", "erp:E-1", "webshop:W-1"}

    created = by_ref["crm:C-1"]
    assert created["method"] == "created"
    assert created["reason"] == (
        "created this golden record (no candidate reached the match threshold)"
    )

    matched = by_ref["webshop:W-1"]
    assert [c["attribute"] for c in matched["contributions"]] == [
        "email",
        "last_name",
        "first_name",
        "city",
        "birth_date",
    ]  # largest |weight| first
    assert matched["reason"] == (
        "matched crm:C-1 with score 14.2 (found by block email=ann@example.com): "
        "email +6.5 (exact), last_name +4 (jaro_winkler), first_name +3.1 (jaro_winkler, "
        "nickname), city -1.2 (levenshtein, similarity 0.3), birth_date +0 (exact, no value)"
    )
    assert (matched["score"], matched["matched_ref"]) == (14.2, "crm:C-1")

    linked = by_ref["erp:E-1"]
    assert linked["reason"] == (
        "linked to crm:C-1 by steward command cmd-9; came with golden record g2 when it merged "
        "into this one"
    )
    assert (linked["command_id"], linked["merged_from"]) == ("cmd-9", "g2")


def test_explain_follows_merges(app: FastAPI) -> None:
    response = get(app, "/v1/customer/golden/g3/explain")
    assert response.status_code == 200
    assert response.json()["golden_id"] == "g1"
    assert response.json()["redirected_from"] == "g3"
    assert response.headers["content-location"] == "/v1/customer/golden/g1/explain"


def test_explain_of_an_unknown_record_is_a_404(app: FastAPI) -> None:
    assert_problem(get(app, "/v1/customer/golden/nope/explain"), 404, "not-found")
    assert_problem(get(app, "/v1/supplier/golden/g1/explain"), 404, "unknown-entity")


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        (link("crm", "1", "split", command_id="cmd-3"), "split out by steward command cmd-3"),
        (
            link("crm", "1", "split"),
            "split out into a golden record of its own (it no longer matched the others)",
        ),
        (
            link("crm", "1", "rule", rule="same_tax_id", matched_ref="erp:9", score=20.0),
            "matched erp:9 by rule same_tax_id, score 20",
        ),
        (link("crm", "1", "steward_link", command_id="c-1"), "linked by steward command c-1"),
        ({}, "no explanation recorded (linked before identity resolution)"),
    ],
)
def test_every_kind_of_link_has_a_reason(given: dict[str, Any], reason: str) -> None:
    assert link_reason(given) == reason


def test_a_source_without_a_link_is_still_explained() -> None:
    [item] = explain_links({"sources": [source("crm", "1")], "links": []})
    assert item["method"] is None
    assert "before identity resolution" in item["reason"]


# -- the review queue -----------------------------------------------------------------------------


def test_the_review_queue_pages_oldest_first(app: FastAPI) -> None:
    body = get(app, "/v1/customer/review").json()
    assert (body["total"], body["offset"], body["limit"]) == (3, 0, 50)
    assert [item["pair_id"] for item in body["items"]] == ["p1", "p2", "p3"]
    first = body["items"][0]
    assert {k: first[k] for k in ("ref", "candidate_ref", "golden_id", "candidate_golden_id")} == {
        "ref": "crm:R-p1",
        "candidate_ref": "webshop:C-p1",
        "golden_id": "g-p1",
        "candidate_golden_id": "h-p1",
    }
    assert (first["score"], first["blocking_key"], first["detected_at"]) == (
        7.5,
        "email=x@example.com",
        "2026-01-01T10:01:00Z",
    )
    assert first["contributions"][0]["method"] == "jaro_winkler"

    page = get(app, "/v1/customer/review?offset=1&limit=1").json()
    assert page["total"] == 3
    assert [item["pair_id"] for item in page["items"]] == ["p2"]


def test_a_pair_joined_since_it_was_found_says_so(app: FastAPI, cache: InMemoryGoldenCache) -> None:
    # a later match put both records of p2 into one golden record, and p3's record into another
    joined = {"golden_id": "g-joined", "entity": E, "version": 1, "status": "active"}
    cache.apply_golden(
        E,
        [
            GoldenView("g-joined", 1, joined, (("crm", "R-p2"), ("webshop", "C-p2"))),
            GoldenView("g-other", 1, {**joined, "golden_id": "g-other"}, (("crm", "R-p3"),)),
        ],
    )

    items = {i["pair_id"]: i for i in get(app, "/v1/customer/review").json()["items"]}

    now = ("golden_id_now", "candidate_golden_id_now", "same_golden_now")
    assert tuple(items["p2"][k] for k in now) == ("g-joined", "g-joined", True)
    assert tuple(items["p3"][k] for k in now) == ("g-other", None, False)
    assert tuple(items["p1"][k] for k in now) == (None, None, False)  # the views know neither
    single = get(app, "/v1/customer/review/p2").json()
    assert single["same_golden_now"] is True


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "offset=-1", "limit=x"])
def test_bad_review_paging_is_a_422_problem(app: FastAPI, query: str) -> None:
    assert_problem(get(app, f"/v1/customer/review?{query}"), 422, "invalid-request")


def test_a_decided_pair_can_still_be_read(app: FastAPI) -> None:
    body = get(app, "/v1/customer/review/done").json()
    assert (body["status"], body["decided_by"], body["score"]) == ("accepted", "cmd-1", 7.5)
    assert_problem(get(app, "/v1/customer/review/nope"), 404, "not-found")


@pytest.mark.parametrize(
    ("verb", "action"), [("accept", Action.ACCEPT_MATCH), ("reject", Action.REJECT_MATCH)]
)
def test_a_decision_sends_the_command_of_the_pair(
    app: FastAPI, commands: CommandRecorder, verb: str, action: Action
) -> None:
    response = post(app, f"/v1/customer/review/p2/{verb}", {"by": "ann", "reason": "same phone"})
    assert response.status_code == 202
    [sent] = commands.sent
    assert isinstance(sent, StewardCommand)
    assert (sent.action, sent.entity, sent.pair_id) == (action, E, "p2")
    assert (sent.source_ref, sent.other_ref) == ("crm:R-p2", "webshop:C-p2")
    assert (sent.issued_by, sent.reason, sent.golden_id) == ("ann", "same phone", "")
    assert response.json() == {
        "command_id": sent.command_id,
        "entity": E,
        "action": action.value,
        "pair_id": "p2",
        "source_ref": "crm:R-p2",
        "other_ref": "webshop:C-p2",
    }


def test_a_decision_needs_no_body(app: FastAPI, commands: CommandRecorder) -> None:
    assert post(app, "/v1/customer/review/p1/accept").status_code == 202
    assert commands.sent[0].issued_by is None


def test_deciding_an_unknown_or_decided_pair_is_refused(
    app: FastAPI, commands: CommandRecorder
) -> None:
    assert_problem(post(app, "/v1/customer/review/nope/accept"), 404, "not-found")
    body = assert_problem(post(app, "/v1/customer/review/done/reject"), 409, "already-decided")
    assert body["review_status"] == "accepted"
    assert "cmd-1" in body["detail"]
    assert_problem(post(app, "/v1/customer/review/p1/accept", {"who": "x"}), 422)
    assert commands.sent == []


def test_decisions_without_commands_enabled_are_a_503(cache: InMemoryGoldenCache) -> None:
    app = create_app(cache, [E])
    body = assert_problem(post(app, "/v1/customer/review/p1/accept"), 503, "commands-disabled")
    assert "not enabled" in body["detail"]
    assert_problem(post(app, "/v1/customer/commands", {"action": "erase", "golden_id": "g1"}), 503)


def test_kafka_down_is_a_retryable_503_without_internals(
    app: FastAPI, commands: CommandRecorder
) -> None:
    commands.available = False
    for response in (
        post(app, "/v1/customer/review/p1/accept"),
        post(app, "/v1/customer/commands", {"action": "erase", "golden_id": "g1"}),
    ):
        body = assert_problem(response, 503, "kafka-unavailable")
        assert body["retryable"] is True
        assert response.headers["retry-after"] == "5"
        assert "memory://" not in response.text and "Traceback" not in response.text


def test_a_publish_error_is_a_503_too(cache: InMemoryGoldenCache) -> None:
    def refuse(command: StewardCommand) -> None:
        raise PublishError("1 message(s) failed: topic authorization failed")

    app = create_app(cache, [E], send_command=refuse)
    assert_problem(post(app, "/v1/customer/review/p1/reject"), 503, "kafka-unavailable")


def test_redis_down_is_a_503_for_the_new_reads(app: FastAPI, cache: InMemoryGoldenCache) -> None:
    cache.available = False
    for path in ("/v1/customer/review", "/v1/customer/golden/g1/explain"):
        assert_problem(get(app, path), 503, "redis-unavailable")
    assert_problem(post(app, "/v1/customer/review/p1/accept"), 503, "redis-unavailable")


def test_review_endpoints_know_the_entities(app: FastAPI) -> None:
    assert_problem(get(app, "/v1/supplier/review"), 404, "unknown-entity")
    assert_problem(post(app, "/v1/supplier/review/p1/accept"), 404, "unknown-entity")
    body = {"action": "erase", "golden_id": "g1"}
    assert_problem(post(app, "/v1/supplier/commands", body), 404, "unknown-entity")


# -- commands -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"action": "link", "source_ref": "crm:C-1", "other_ref": "erp:E-7", "golden_id": "x"},
            {
                "action": Action.LINK,
                "golden_id": "",
                "source_ref": "crm:C-1",
                "other_ref": "erp:E-7",
            },
        ),
        (
            {"action": "split", "golden_id": "g1", "source_ref": "erp:E-1"},
            {"action": Action.SPLIT, "golden_id": "g1", "source_ref": "erp:E-1", "other_ref": None},
        ),
        (
            {"action": "merge", "golden_id": "g1", "other_golden_id": "g7"},
            {"action": Action.MERGE, "golden_id": "g1", "other_golden_id": "g7"},
        ),
        (
            {"action": "not_match", "source_ref": "crm:C-1", "other_ref": "erp:E-1"},
            {"action": Action.NOT_MATCH, "source_ref": "crm:C-1", "other_ref": "erp:E-1"},
        ),
        (
            {"action": "undo_not_match", "source_ref": "crm:C-1", "other_ref": "erp:E-1"},
            {"action": Action.UNDO_NOT_MATCH},
        ),
        (
            {"action": "override", "golden_id": "g1", "attribute": "tags", "value": ["a", "b"]},
            {"action": Action.OVERRIDE, "attribute": "tags", "value": ("a", "b")},
        ),
        (
            {"action": "clear_override", "golden_id": "g1", "attribute": "tags", "value": 3},
            {"action": Action.CLEAR_OVERRIDE, "attribute": "tags", "value": None},
        ),
        (
            {"action": "erase", "golden_id": "g1", "by": "dpo", "reason": "GDPR"},
            {"action": Action.ERASE, "golden_id": "g1", "issued_by": "dpo", "reason": "GDPR"},
        ),
    ],
    ids=lambda v: v["action"] if isinstance(v.get("action"), str) else "",
)
def test_commands_are_sent_with_the_fields_of_their_action(
    app: FastAPI, commands: CommandRecorder, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    response = post(app, "/v1/customer/commands", body)
    assert response.status_code == 202, response.text
    [sent] = commands.sent
    for name, value in expected.items():
        assert getattr(sent, name) == value, name
    assert response.json()["command_id"] == sent.command_id
    assert response.json()["action"] == sent.action.value


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"action": "link", "source_ref": "crm:C-1"}, ["other_ref"]),
        ({"action": "split", "golden_id": "g1"}, ["source_ref"]),
        ({"action": "merge", "golden_id": "", "other_golden_id": "g2"}, ["golden_id"]),
        ({"action": "override", "golden_id": "g1", "attribute": "city"}, ["value"]),
        ({"action": "clear_override"}, ["golden_id", "attribute"]),
        ({"action": "not_match"}, ["source_ref", "other_ref"]),
    ],
)
def test_a_command_missing_a_field_is_a_422_naming_it(
    app: FastAPI, commands: CommandRecorder, body: dict[str, Any], missing: list[str]
) -> None:
    problem = assert_problem(post(app, "/v1/customer/commands", body), 422, "invalid-request")
    assert problem["detail"] == f"{body['action']} needs {' and '.join(missing)}"
    assert [e["loc"] for e in problem["errors"]] == [["body", name] for name in missing]
    assert commands.sent == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"action": "link", "source_ref": "crm", "other_ref": "erp:1"}, "<source>:<source_key>"),
        ({"action": "link", "source_ref": "crm:1", "other_ref": "crm:1"}, "two different"),
        ({"action": "merge", "golden_id": "g1", "other_golden_id": "g1"}, "two different"),
    ],
)
def test_a_malformed_command_is_a_422(app: FastAPI, body: dict[str, Any], message: str) -> None:
    problem = assert_problem(post(app, "/v1/customer/commands", body), 422, "invalid-request")
    assert message in problem["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"action": "accept_match", "source_ref": "a:1", "other_ref": "b:2"},
        {"action": "explode", "golden_id": "g1"},
        {"golden_id": "g1"},
        {"action": "erase", "golden_id": "g1", "colour": "red"},
        {"action": "override", "golden_id": "g1", "attribute": "a", "value": {"x": 1}},
    ],
)
def test_an_unknown_action_or_field_is_a_422(app: FastAPI, body: dict[str, Any]) -> None:
    assert_problem(post(app, "/v1/customer/commands", body), 422, "invalid-request")


def test_openapi_documents_the_identity_endpoints(app: FastAPI) -> None:
    spec = get(app, "/openapi.json").json()
    paths = spec["paths"]
    assert paths["/v1/{entity}/golden/{golden_id}/explain"]["get"]["tags"] == ["golden records"]
    assert paths["/v1/{entity}/review"]["get"]["tags"] == ["review queue"]
    accept = paths["/v1/{entity}/review/{pair_id}/accept"]["post"]
    assert accept["tags"] == ["review queue"]
    assert {"202", "404", "409", "503"} <= set(accept["responses"])
    assert PROBLEM_JSON in accept["responses"]["409"]["content"]
    commands = paths["/v1/{entity}/commands"]["post"]
    assert commands["tags"] == ["steward commands"]
    assert PROBLEM_JSON in commands["responses"]["422"]["content"]
    assert {"ReviewPage", "ExplanationOut", "CommandIn", "CommandSentOut"} <= set(
        spec["components"]["schemas"]
    )
    tags = {t["name"] for t in spec["tags"]}
    assert {"review queue", "steward commands"} <= tags


# -- the command sender (one implementation for the CLI and the API) -----------------------------


class FakeProducer:
    def __init__(self, fail: str | None = None) -> None:
        self.fail = fail
        self.messages: list[tuple[str, bytes | None, bytes | None]] = []
        self.timeouts: list[float] = []

    def produce(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.messages.append((topic, key, value))

    def deliver_all(self, timeout: float) -> None:
        self.timeouts.append(timeout)
        if self.fail:
            raise PublishError(self.fail)


def sender(producers: list[FakeProducer], fail: list[str | None]) -> CommandSender:
    def make() -> FakeProducer:
        producers.append(FakeProducer(fail.pop(0) if fail else None))
        return producers[-1]

    return CommandSender(
        Settings().kafka,
        "hub",
        CATALOG.codec(COMMAND_SCHEMA),
        timeout_s=2.0,
        producer_factory=make,
    )


def test_the_sender_publishes_the_command_keyed_by_golden_id_or_source_ref() -> None:
    producers: list[FakeProducer] = []
    send = sender(producers, [])
    erase = new_command(E, Action.ERASE, golden_id="g1", reason="GDPR")
    link = new_command(E, Action.LINK, source_ref="crm:C-1", other_ref="erp:E-1")
    send(erase)
    send(link)
    messages = [m for producer in producers for m in producer.messages]
    assert {topic for topic, _, _ in messages} == {"hub.customer.commands.v1"}
    assert [key for _, key, _ in messages] == [b"g1", b"crm:C-1"]
    value = messages[1][2]
    assert value is not None
    decoded = command_from_avro(CATALOG.codec(COMMAND_SCHEMA).decode(value), None)  # type: ignore[arg-type]
    assert decoded == link
    # a little longer than the message's own expiry
    assert [t for producer in producers for t in producer.timeouts] == [3.0, 3.0]


def test_the_sender_translates_kafka_failures_and_recovers() -> None:
    producers: list[FakeProducer] = []
    send = sender(producers, ["1 message(s) not delivered within 3s to 127.0.0.1:9092"])
    command = new_command(E, Action.ERASE, golden_id="g1")
    with pytest.raises(KafkaUnavailableError, match="mdhub stack status"):
        send(command)
    send(command)  # the failure is not held against the next command
    assert len(producers) == 2


def test_a_missing_commands_topic_is_named() -> None:
    send = sender([], ["1 message(s) failed: hub.customer.commands.v1[-1]: Local: Unknown topic"])
    with pytest.raises(PublishError, match="mdhub topics ensure"):
        send(new_command(E, Action.ERASE, golden_id="g1"))


def test_run_api_wires_a_command_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    from mdhub.api import commands as api_commands

    model = types.SimpleNamespace(entities={E: object()})
    monkeypatch.setattr("mdhub.modelfile.load_model", lambda path: model)
    made: dict[str, Any] = {}
    real_create_app = create_app

    def spy(*args: Any, **kwargs: Any) -> FastAPI:
        made.update(kwargs)
        return real_create_app(*args, **kwargs)

    monkeypatch.setattr("mdhub.api.app.create_app", spy)
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: None)
    monkeypatch.setattr("mdhub.ops.monitor.LagMonitor.start", lambda self: None)
    monkeypatch.setattr("mdhub.api.dashboard.DashboardSampler.start", lambda self: None)
    settings = Settings(
        model_file=Path("model.yaml"),
        schemas_dir=REPO / "schemas",
        api=ApiSettings(host="127.0.0.1", port=8000),
    )
    args = build_parser().parse_args(["api"])
    assert api_commands.run_api(args, settings) == 0
    assert isinstance(made["send_command"], CommandSender)


# -- the CLI --------------------------------------------------------------------------------------


@pytest.fixture
def repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the default settings name config/model.yaml and schemas/
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def cli_commands(monkeypatch: pytest.MonkeyPatch, repo_root: None) -> CommandRecorder:
    recorder = CommandRecorder()

    class Sender:
        @classmethod
        def from_settings(cls, settings: Settings, catalog: SchemaCatalog) -> CommandRecorder:
            return recorder

    monkeypatch.setattr(steward_command, "CommandSender", Sender)
    return recorder


@pytest.fixture
def cli_cache(monkeypatch: pytest.MonkeyPatch, cache: InMemoryGoldenCache) -> InMemoryGoldenCache:
    monkeypatch.setattr(
        "mdhub.cache.views.RedisGoldenCache.from_url", lambda *args, **kwargs: cache
    )
    return cache


def flat(text: str) -> str:
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())


@pytest.mark.parametrize(
    ("argv", "action", "fields"),
    [
        (
            ["link", E, "crm:C-1", "erp:E-1", "--by", "ann"],
            Action.LINK,
            {"source_ref": "crm:C-1", "other_ref": "erp:E-1", "golden_id": "", "issued_by": "ann"},
        ),
        (["split", E, "g1", "erp:E-1"], Action.SPLIT, {"golden_id": "g1", "source_ref": "erp:E-1"}),
        (["merge", E, "g1", "g7"], Action.MERGE, {"golden_id": "g1", "other_golden_id": "g7"}),
        (
            ["not-match", E, "crm:C-1", "erp:E-1", "--reason", "twins"],
            Action.NOT_MATCH,
            {"source_ref": "crm:C-1", "other_ref": "erp:E-1", "reason": "twins"},
        ),
        (["not-match", E, "crm:C-1", "erp:E-1", "--undo"], Action.UNDO_NOT_MATCH, {}),
        (
            ["override", E, "g1", "loyalty_tier", "gold"],
            Action.OVERRIDE,
            {"golden_id": "g1", "attribute": "loyalty_tier", "value": "gold"},
        ),
        (
            ["clear-override", E, "g1", "loyalty_tier"],
            Action.CLEAR_OVERRIDE,
            {"golden_id": "g1", "attribute": "loyalty_tier", "value": None},
        ),
        (["erase", E, "g1", "--reason", "GDPR"], Action.ERASE, {"golden_id": "g1"}),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else "",
)
def test_steward_commands_from_the_cli(
    cli_commands: CommandRecorder,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    action: Action,
    fields: dict[str, Any],
) -> None:
    assert main(["steward", *argv]) == 0
    [sent] = cli_commands.sent
    assert (sent.action, sent.entity) == (action, E)
    for name, value in fields.items():
        assert getattr(sent, name) == value, name
    assert f"sent {action.value} command {sent.command_id}" in flat(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["link", E, "crm", "erp:E-1"], "is not a source record reference"),
        (["split", E, "g1", "nocolon"], "is not a source record reference"),
        (["review", E, "--limit", "0"], "must be at least 1"),
        (["review", E, "--offset", "-1"], "must be at least 0"),
        (["accept", E], "the following arguments are required: pair_id"),
    ],
)
def test_the_cli_refuses_bad_arguments(
    repo_root: None, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["steward", *argv])
    assert info.value.code == 2
    assert message in flat(capsys.readouterr().err)


def test_the_cli_refuses_the_same_record_twice(
    cli_commands: CommandRecorder, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["steward", "link", E, "crm:1", "crm:1"]) == 2
    assert "two different source records" in flat(capsys.readouterr().err)
    assert cli_commands.sent == []


def test_the_cli_checks_an_override_against_the_model(
    cli_commands: CommandRecorder, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["steward", "override", E, "g1", "shoe_size", "42"]) == 2
    assert "'shoe_size' is not an attribute of customer" in flat(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("verb", "action"), [("accept", Action.ACCEPT_MATCH), ("reject", Action.REJECT_MATCH)]
)
def test_the_cli_decides_a_pair_looked_up_in_redis(
    cli_commands: CommandRecorder,
    cli_cache: InMemoryGoldenCache,
    capsys: pytest.CaptureFixture[str],
    verb: str,
    action: Action,
) -> None:
    assert main(["steward", verb, E, "p1", "--by", "ann"]) == 0
    [sent] = cli_commands.sent
    assert (sent.action, sent.pair_id, sent.source_ref, sent.other_ref, sent.issued_by) == (
        action,
        "p1",
        "crm:R-p1",
        "webshop:C-p1",
        "ann",
    )
    assert "for pair p1" in flat(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("pair_id", "message"),
    [("nope", "no potential match nope"), ("done", "already accepted by command cmd-1")],
)
def test_the_cli_refuses_an_unknown_or_decided_pair(
    cli_commands: CommandRecorder,
    cli_cache: InMemoryGoldenCache,
    capsys: pytest.CaptureFixture[str],
    pair_id: str,
    message: str,
) -> None:
    assert main(["steward", "accept", E, pair_id]) == 1
    assert message in flat(capsys.readouterr().err)
    assert cli_commands.sent == []


def test_the_cli_lists_the_review_queue(
    cli_cache: InMemoryGoldenCache, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["steward", "review", E, "--limit", "2"]) == 0
    out, err = capsys.readouterr()
    rows = [line for line in out.splitlines() if "crm:R-" in line]
    assert [re.search(r"crm:R-(p\d)", row).group(1) for row in rows] == ["p1", "p2"]  # type: ignore[union-attr]
    assert "7.50" in rows[0]
    assert "1-2 of 3 open" in flat(err)
    assert "--offset 2" in flat(err)

    assert main(["steward", "review", E, "--json", "--offset", "2"]) == 0
    page = json.loads(capsys.readouterr().out)
    assert (page["total"], [i["pair_id"] for i in page["items"]]) == (3, ["p3"])


def test_the_cli_explains_a_golden_record(
    cli_cache: InMemoryGoldenCache, repo_root: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", E, "g2", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert (body["golden_id"], body["redirected_from"]) == ("g1", "g2")
    assert len(body["sources"]) == 3

    assert main(["explain", E, "g1"]) == 0
    out = flat(capsys.readouterr().out)
    assert "webshop:W-1" in out and "matched crm:C-1 with score 14.2" in out
    assert "email +6.5 (exact)" in out

    assert main(["explain", E, "nope"]) == 1
    assert "no golden customer nope" in flat(capsys.readouterr().err)


def test_unreachable_servers_are_retryable_cli_errors(
    cli_cache: InMemoryGoldenCache,
    cli_commands: CommandRecorder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli_cache.available = False
    for argv in (["explain", E, "g1"], ["steward", "review", E], ["steward", "accept", E, "p1"]):
        assert main(argv) == 3
        assert "This is retryable" in capsys.readouterr().err
    cli_commands.available = False
    assert main(["steward", "merge", E, "g1", "g2"]) == 3
    assert "Kafka" in flat(capsys.readouterr().err)


def test_every_new_command_has_help(repo_root: None, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["steward", "link"],
        ["steward", "split"],
        ["steward", "merge"],
        ["steward", "not-match"],
        ["steward", "review"],
        ["steward", "accept"],
        ["steward", "reject"],
        ["explain"],
    ):
        with pytest.raises(SystemExit) as info:
            main([*argv, "--help"])
        assert info.value.code == 0
        assert flat(capsys.readouterr().out).startswith(f"usage: mdhub {' '.join(argv)}")


@pytest.fixture(autouse=True)
def _no_real_kafka(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test here may reach a broker: a real producer would be a bug in the test."""

    def refuse(self: CommandSender) -> Any:
        raise AssertionError("a unit test tried to create a real Kafka producer")

    monkeypatch.setattr(CommandSender, "_hub_producer", refuse)
    yield
