"""The review-queue views: open pairs wait oldest first, a decision is final, replays change nothing.

The semantics are checked on the in-memory cache (the contract the Redis one follows); the Redis
implementation's keys, arguments and error translation through a recording fake client; the
projector's decoding of the review topic through the real Avro codec.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.exceptions as rexc

from mdhub.cache.projector import REVIEW_SCHEMA, _Decoder, review_doc_of
from mdhub.cache.views import GoldenCache, RedisGoldenCache, review_fields
from mdhub.domain.records import LinkContribution
from mdhub.domain.resolve import PotentialMatch
from mdhub.errors import RedisUnavailableError
from mdhub.modelfile import load_model
from mdhub.serde.catalog import SchemaCatalog
from mdhub.serde.mapping import potential_match_to_avro
from mdhub.settings import Settings
from mdhub.testing import FakeKafkaMessage, InMemoryGoldenCache

REPO = Path(__file__).resolve().parents[2]
E = "customer"
CONTRIBUTIONS = [
    {"attribute": "email", "method": "exact", "similarity": 1.0, "weight": 6.5, "detail": ""},
    {
        "attribute": "first_name",
        "method": "jaro_winkler",
        "similarity": 0.8,
        "weight": 1.25,
        "detail": "nickname",
    },
]


def pair(
    pair_id: str,
    status: str = "open",
    minute: int = 0,
    *,
    score: float = 7.5,
    decided_by: str | None = None,
    contributions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A review document as the projector makes it; a decision has score 0 and no contributions."""
    decision = status != "open"
    return {
        "pair_id": pair_id,
        "entity": E,
        "status": status,
        "ref": f"crm:{pair_id}",
        "golden_id": f"g-{pair_id}",
        "candidate_ref": f"web:{pair_id}",
        "candidate_golden_id": f"h-{pair_id}",
        "score": 0.0 if decision else score,
        "blocking_key": None if decision else "email=ann@example.com",
        "contributions": [] if decision else (contributions or CONTRIBUTIONS),
        "detected_at": f"2026-01-01T10:{minute:02d}:00Z",
        "decided_by": decided_by,
    }


@pytest.fixture
def cache() -> InMemoryGoldenCache:
    return InMemoryGoldenCache()


def queue(cache: GoldenCache, entity: str = E) -> list[str]:
    _, items = cache.list_reviews(entity, offset=0, limit=500)
    return [item["pair_id"] for item in items]


def test_the_in_memory_cache_implements_the_port(cache: InMemoryGoldenCache) -> None:
    assert isinstance(cache, GoldenCache)


def test_open_pairs_wait_oldest_first_and_page(cache: InMemoryGoldenCache) -> None:
    applied = cache.apply_reviews(
        E, [pair("c", minute=3), pair("a", minute=1), pair("b", minute=2)]
    )
    assert applied == 3
    assert queue(cache) == ["a", "b", "c"]
    total, page = cache.list_reviews(E, offset=1, limit=1)
    assert total == 3
    assert [p["pair_id"] for p in page] == ["b"]
    total, past_the_end = cache.list_reviews(E, offset=5, limit=10)
    assert (total, past_the_end) == (3, [])


def test_pairs_found_at_the_same_time_are_ordered_by_id(cache: InMemoryGoldenCache) -> None:
    cache.apply_reviews(E, [pair("z"), pair("m"), pair("a")])
    assert queue(cache) == ["a", "m", "z"]


def test_an_open_pair_reads_back_as_detected(cache: InMemoryGoldenCache) -> None:
    cache.apply_reviews(E, [pair("p1")])
    assert cache.get_review(E, "p1") == {**pair("p1"), "decided_at": None}
    assert cache.get_review(E, "unknown") is None


@pytest.mark.parametrize("decision", ["accepted", "rejected"])
def test_a_decision_leaves_the_queue_and_keeps_the_score(
    cache: InMemoryGoldenCache, decision: str
) -> None:
    cache.apply_reviews(E, [pair("p1", minute=1), pair("p2", minute=2)])
    assert cache.apply_reviews(E, [pair("p1", decision, minute=30, decided_by="cmd-1")]) == 1

    assert queue(cache) == ["p2"]
    assert cache.list_reviews(E, offset=0, limit=10)[0] == 1
    decided = cache.get_review(E, "p1")
    assert decided is not None
    assert decided["status"] == decision
    assert decided["decided_by"] == "cmd-1"
    assert decided["decided_at"] == "2026-01-01T10:30:00Z"
    # the details are those of the open record, not the decision's zeros
    assert decided["score"] == 7.5
    assert decided["contributions"] == CONTRIBUTIONS
    assert decided["blocking_key"] == "email=ann@example.com"
    assert decided["detected_at"] == "2026-01-01T10:01:00Z"


def test_a_replayed_open_record_does_not_reopen_a_decided_pair(
    cache: InMemoryGoldenCache,
) -> None:
    cache.apply_reviews(E, [pair("p1"), pair("p1", "accepted", 5, decided_by="cmd-1")])
    assert cache.apply_reviews(E, [pair("p1")]) == 0
    assert queue(cache) == []
    decided = cache.get_review(E, "p1")
    assert decided is not None and decided["status"] == "accepted"


def test_replays_change_nothing(cache: InMemoryGoldenCache) -> None:
    messages = [pair("p1"), pair("p2", minute=1), pair("p1", "rejected", 9, decided_by="cmd-7")]
    assert cache.apply_reviews(E, messages) == 3
    before = (cache.list_reviews(E, offset=0, limit=10), cache.get_review(E, "p1"))

    assert cache.apply_reviews(E, messages) == 0  # the whole topic again, as after a rewind

    assert (cache.list_reviews(E, offset=0, limit=10), cache.get_review(E, "p1")) == before


def test_a_decision_seen_before_its_open_record_is_completed_by_it(
    cache: InMemoryGoldenCache,
) -> None:
    assert cache.apply_reviews(E, [pair("p1", "accepted", 9, decided_by="cmd-1")]) == 1
    assert queue(cache) == []
    assert cache.apply_reviews(E, [pair("p1")]) == 1  # fills in the details...
    assert queue(cache) == []  # ...without reopening
    decided = cache.get_review(E, "p1")
    assert decided is not None
    assert (decided["status"], decided["decided_by"], decided["score"]) == (
        "accepted",
        "cmd-1",
        7.5,
    )
    assert cache.apply_reviews(E, [pair("p1")]) == 0


def test_a_new_detection_of_an_open_pair_updates_it_in_place(cache: InMemoryGoldenCache) -> None:
    cache.apply_reviews(E, [pair("a", minute=1), pair("b", minute=2)])
    assert cache.apply_reviews(E, [pair("a", minute=7, score=9.0)]) == 1
    assert queue(cache) == ["a", "b"]  # keeps its place in the queue
    updated = cache.get_review(E, "a")
    assert updated is not None and updated["score"] == 9.0


def test_a_later_decision_replaces_an_earlier_one(cache: InMemoryGoldenCache) -> None:
    cache.apply_reviews(E, [pair("p1"), pair("p1", "rejected", 5, decided_by="cmd-1")])
    assert cache.apply_reviews(E, [pair("p1", "accepted", 6, decided_by="cmd-2")]) == 1
    decided = cache.get_review(E, "p1")
    assert decided is not None and (decided["status"], decided["decided_by"]) == (
        "accepted",
        "cmd-2",
    )


def test_entities_have_their_own_queues(cache: InMemoryGoldenCache) -> None:
    cache.apply_reviews(E, [pair("p1")])
    cache.apply_reviews("product", [pair("p2")])
    assert queue(cache) == ["p1"]
    assert queue(cache, "product") == ["p2"]
    assert cache.get_review("product", "p1") is None


def test_clear_drops_the_review_views(cache: InMemoryGoldenCache) -> None:
    cache.apply_reviews(E, [pair("p1"), pair("p2"), pair("p2", "accepted", 3, decided_by="c")])
    assert cache.clear(E) == 3  # two review hashes and the queue
    assert cache.list_reviews(E, offset=0, limit=10) == (0, [])
    assert cache.get_review(E, "p1") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pair_id": ""}, "pair_id"),
        ({"status": "maybe"}, "status must be one of open, accepted, rejected"),
        ({"detected_at": "yesterday"}, "detected_at"),
    ],
)
def test_an_invalid_document_is_refused(
    cache: InMemoryGoldenCache, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        cache.apply_reviews(E, [pair("ok"), {**pair("p1"), **change}])
    assert queue(cache) == []  # nothing of the call was applied


@pytest.mark.parametrize(("offset", "limit"), [(-1, 10), (0, 0)])
def test_bad_paging_is_refused(cache: InMemoryGoldenCache, offset: int, limit: int) -> None:
    with pytest.raises(ValueError):
        cache.list_reviews(E, offset=offset, limit=limit)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.apply_reviews(E, [pair("p1")]),
        lambda c: c.list_reviews(E, offset=0, limit=10),
        lambda c: c.get_review(E, "p1"),
    ],
    ids=["apply_reviews", "list_reviews", "get_review"],
)
def test_redis_down_is_retryable(
    cache: InMemoryGoldenCache, call: Callable[[InMemoryGoldenCache], object]
) -> None:
    cache.available = False
    with pytest.raises(RedisUnavailableError, match="unavailable"):
        call(cache)


def test_review_fields_orders_by_milliseconds_and_keeps_the_decision() -> None:
    opened = review_fields({**pair("p1"), "detected_at": "2026-01-01T10:00:00.123+00:00"})
    assert opened.detected_ms == 1767261600123
    assert (opened.is_open, opened.decided_by, opened.decided_at) == (True, "", "")
    decided = review_fields(pair("p1", "rejected", 5, decided_by="cmd-1"))
    assert (decided.is_open, decided.decided_by) == (False, "cmd-1")
    assert decided.decided_at == "2026-01-01T10:05:00Z"


# -- the Redis implementation, through a recording fake client -----------------------------------


class FakeScript:
    def __init__(self, calls: list[tuple[list[str], list[Any]]]) -> None:
        self.calls = calls

    def __call__(self, *, keys: list[str], args: list[Any], client: Any) -> None:
        self.calls.append((keys, args))
        client.results.append(1)


class FakePipeline:
    def __init__(self, client: FakeRedis) -> None:
        self.client = client
        self.results: list[Any] = []

    def zcard(self, key: str) -> None:
        self.client.read.append(("zcard", key))
        self.results.append(len(self.client.queue))

    def zrange(self, key: str, start: int, end: int) -> None:
        self.client.read.append(("zrange", key, start, end))
        self.results.append(self.client.queue[start : end + 1])

    def hgetall(self, key: str) -> None:
        self.results.append(self.client.hgetall(key))

    def execute(self) -> list[Any]:
        if self.client.down:
            raise rexc.ConnectionError("Connection refused")
        return self.results


class FakeRedis:
    """Just enough of redis-py's client for RedisGoldenCache's review methods (bytes replies)."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[Any]]] = []
        self.read: list[tuple[Any, ...]] = []
        self.queue: list[bytes] = []
        self.hashes: dict[str, dict[bytes, bytes]] = {}
        self.down = False
        self.connection_pool = type(
            "Pool",
            (),
            {"connection_kwargs": {"host": "fake", "port": 1}, "connection_class": object},
        )()

    def register_script(self, source: str) -> FakeScript:
        return FakeScript(self.calls)

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)

    def hgetall(self, key: str) -> dict[bytes, bytes]:
        if self.down:
            raise rexc.ConnectionError("Connection refused")
        self.read.append(("hgetall", key))
        return self.hashes.get(key, {})


@pytest.fixture
def fake() -> FakeRedis:
    return FakeRedis()


@pytest.fixture
def redis_cache(fake: FakeRedis) -> RedisGoldenCache:
    return RedisGoldenCache(fake, "hub", batch_size=2)  # type: ignore[arg-type]


def test_redis_writes_each_pair_through_the_script_with_its_keys(
    fake: FakeRedis, redis_cache: RedisGoldenCache
) -> None:
    docs = [pair("p1", minute=1), pair("p2"), pair("p1", "accepted", 2, decided_by="cmd-1")]
    assert redis_cache.apply_reviews(E, docs) == 3  # two pipelines of at most 2
    keys = [k for k, _ in fake.calls]
    assert keys == [
        ["hub:customer:review:p1", "hub:customer:reviewq"],
        ["hub:customer:review:p2", "hub:customer:reviewq"],
        ["hub:customer:review:p1", "hub:customer:reviewq"],
    ]
    pair_id, status, doc, detected_ms, decided_by, decided_at = fake.calls[2][1]
    assert (pair_id, status, decided_by, decided_at) == (
        "p1",
        "accepted",
        "cmd-1",
        "2026-01-01T10:02:00Z",
    )
    assert detected_ms == 1767261720000
    assert '"pair_id":"p1"' in doc
    assert fake.calls[0][1][4:] == ["", ""]  # an open pair has no decision


def test_redis_reads_a_page_of_the_queue_and_the_pairs(
    fake: FakeRedis, redis_cache: RedisGoldenCache
) -> None:
    fake.queue = [b"p1", b"gone", b"p2"]
    for pid in ("p1", "p2"):
        fake.hashes[f"hub:customer:review:{pid}"] = {
            b"doc": review_fields(pair(pid)).doc.encode(),
            b"status": b"open",
            b"opened": b"1",
        }
    total, items = redis_cache.list_reviews(E, offset=0, limit=3)
    assert total == 3
    assert [item["pair_id"] for item in items] == ["p1", "p2"]  # one was cleared meanwhile
    assert ("zrange", "hub:customer:reviewq", 0, 2) in fake.read
    fake.hashes["hub:customer:review:p1"].update(
        {b"status": b"rejected", b"decided_by": b"cmd-1", b"decided_at": b"2026-01-02T00:00:00Z"}
    )
    decided = redis_cache.get_review(E, "p1")
    assert decided is not None
    assert (decided["status"], decided["decided_by"], decided["decided_at"]) == (
        "rejected",
        "cmd-1",
        "2026-01-02T00:00:00Z",
    )
    assert decided["score"] == 7.5
    assert redis_cache.get_review(E, "nope") is None


def test_redis_errors_become_retryable_unavailable_errors(
    fake: FakeRedis, redis_cache: RedisGoldenCache
) -> None:
    fake.down = True
    with pytest.raises(RedisUnavailableError, match="redis://fake:1/0"):
        redis_cache.apply_reviews(E, [pair("p1")])
    with pytest.raises(RedisUnavailableError):
        redis_cache.list_reviews(E, offset=0, limit=10)
    with pytest.raises(RedisUnavailableError):
        redis_cache.get_review(E, "p1")


# -- the projector's decoding of the review topic ------------------------------------------------


def potential_match(status: str = "open", **changes: Any) -> PotentialMatch:
    fields: dict[str, Any] = {
        "pair_id": "p1",
        "status": status,
        "ref": "crm:C-1",
        "golden_id": "g1",
        "candidate_ref": "web:W-1",
        "candidate_golden_id": "g2",
        "score": 8.25,
        "blocking_key": "email=ann@example.com",
        "contributions": (LinkContribution("first_name", "jaro_winkler", 0.9, 2.5, "nickname"),),
        "detected_at": dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.UTC),
    }
    fields.update(changes)
    return PotentialMatch(**fields)


def test_the_projector_reads_the_review_topic_into_the_review_views() -> None:
    catalog = SchemaCatalog.load(REPO / "schemas")
    hub = load_model(REPO / "config" / "model.yaml")
    codec = catalog.codec(REVIEW_SCHEMA)
    decoder = _Decoder(Settings(namespace="mdhub"), list(hub.entities.values()), catalog)
    topic = "mdhub.customer.review.v1"
    assert decoder.entity_of[topic] == "customer"

    opened = codec.encode(potential_match_to_avro(E, potential_match()))
    decided = potential_match(
        "accepted",
        score=0.0,
        blocking_key=None,
        contributions=(),
        detected_at=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
        decided_by="cmd-1",
    )
    messages: list[Any] = [
        FakeKafkaMessage(topic, opened),
        FakeKafkaMessage(topic, b"garbage", 1),  # skipped, logged
        FakeKafkaMessage(topic, codec.encode(potential_match_to_avro(E, decided)), 2),
    ]
    batch = decoder.group(messages)
    first = review_doc_of(codec, opened, E)
    assert first == {
        "pair_id": "p1",
        "entity": "customer",
        "status": "open",
        "ref": "crm:C-1",
        "golden_id": "g1",
        "candidate_ref": "web:W-1",
        "candidate_golden_id": "g2",
        "score": 8.25,
        "blocking_key": "email=ann@example.com",
        "contributions": [
            {
                "attribute": "first_name",
                "method": "jaro_winkler",
                "similarity": 0.9,
                "weight": 2.5,
                "detail": "nickname",
            }
        ],
        "detected_at": "2026-01-01T10:00:00Z",
        "decided_by": None,
    }
    assert [d["status"] for d in batch.reviews["customer"]] == ["open", "accepted"]

    cache = InMemoryGoldenCache()
    assert batch.apply(cache) == (0, 0, 2)
    assert cache.list_reviews(E, offset=0, limit=10) == (0, [])
    stored = cache.get_review(E, "p1")
    assert stored is not None
    assert (stored["status"], stored["score"], stored["decided_at"]) == (
        "accepted",
        8.25,
        "2026-01-02T00:00:00Z",
    )
