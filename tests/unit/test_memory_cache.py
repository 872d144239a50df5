"""The in-memory golden cache keeps the version guard and xref rules of the Redis one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from mdhub.cache import GoldenCache, GoldenView, HistoryEntry
from mdhub.cache.views import encode_doc
from mdhub.errors import MdhubError, RedisUnavailableError
from mdhub.testing import InMemoryGoldenCache

E = "customer"


def view(gid: str, version: int, name: str | None, *xrefs: tuple[str, str]) -> GoldenView:
    doc = None if name is None else {"golden_id": gid, "name": name}
    return GoldenView(gid, version, doc, tuple(xrefs))


@pytest.fixture
def cache() -> InMemoryGoldenCache:
    return InMemoryGoldenCache()


def test_implements_the_port(cache: InMemoryGoldenCache) -> None:
    assert isinstance(cache, GoldenCache)


def test_newer_version_wins(cache: InMemoryGoldenCache) -> None:
    assert cache.apply_golden(E, [view("g1", 1, "Ann", ("crm", "1"))]) == 1
    assert cache.apply_golden(E, [view("g1", 2, "Anna", ("crm", "1"))]) == 1
    assert cache.get_golden(E, "g1") == {"golden_id": "g1", "name": "Anna"}
    assert cache.version(E, "g1") == 2


@pytest.mark.parametrize("replayed", [1, 2])
def test_same_or_older_version_changes_nothing(cache: InMemoryGoldenCache, replayed: int) -> None:
    cache.apply_golden(E, [view("g1", 1, "Ann", ("crm", "1")), view("g1", 2, "Anna", ("crm", "1"))])
    assert cache.apply_golden(E, [view("g1", replayed, "Old", ("web", "9"))]) == 0
    assert cache.get_golden(E, "g1") == {"golden_id": "g1", "name": "Anna"}
    assert cache.get_xref(E, "web", "9") is None
    assert cache.get_xref(E, "crm", "1") == "g1"


def test_versions_in_one_call_end_with_the_highest(cache: InMemoryGoldenCache) -> None:
    applied = cache.apply_golden(E, [view("g1", 3, "C"), view("g1", 2, "B"), view("g1", 4, "D")])
    assert applied == 2
    assert cache.get_golden(E, "g1") == {"golden_id": "g1", "name": "D"}


def test_gone_doc_drops_doc_and_xrefs_and_blocks_older_replays(cache: InMemoryGoldenCache) -> None:
    cache.apply_golden(E, [view("g1", 1, "Ann", ("crm", "1"), ("web", "a"))])
    assert cache.count(E) == 1

    assert cache.apply_golden(E, [view("g1", 2, None, ("crm", "1"))]) == 1
    assert cache.get_golden(E, "g1") is None
    assert cache.get_xref(E, "crm", "1") is None
    assert cache.get_xref(E, "web", "a") is None
    assert cache.count(E) == 0
    assert cache.version(E, "g1") == 2

    assert cache.apply_golden(E, [view("g1", 1, "Ann", ("crm", "1"))]) == 0
    assert cache.get_golden(E, "g1") is None
    assert cache.get_xref(E, "crm", "1") is None


def test_a_source_that_leaves_loses_its_xref(cache: InMemoryGoldenCache) -> None:
    cache.apply_golden(E, [view("g1", 1, "Ann", ("crm", "1"), ("web", "a"))])
    cache.apply_golden(E, [view("g1", 2, "Ann", ("crm", "1"))])
    assert cache.get_xref(E, "crm", "1") == "g1"
    assert cache.get_xref(E, "web", "a") is None


def test_xref_moves_to_the_record_a_source_joins(cache: InMemoryGoldenCache) -> None:
    cache.apply_golden(E, [view("a", 1, "Ann", ("crm", "1"), ("web", "x"))])
    cache.apply_golden(E, [view("b", 1, "Bob", ("erp", "7"), ("web", "x"))])  # web:x joins b
    assert cache.get_xref(E, "web", "x") == "b"
    cache.apply_golden(E, [view("a", 2, "Ann", ("crm", "1"))])  # ...and a lets it go
    assert cache.get_xref(E, "web", "x") == "b"
    assert cache.get_xref(E, "crm", "1") == "a"


def test_the_newest_claim_answers_while_two_records_list_a_source(
    cache: InMemoryGoldenCache,
) -> None:
    # b took web:x; a's next version, decided before the move, still lists it: b keeps answering
    cache.apply_golden(E, [view("a", 1, "Ann", ("web", "x"))])
    cache.apply_golden(E, [view("b", 1, "Bob", ("web", "x"))])
    cache.apply_golden(E, [view("a", 2, "Ann B.", ("web", "x"))])
    assert cache.get_xref(E, "web", "x") == "b"
    cache.apply_golden(E, [view("a", 3, "Ann B.")])
    assert cache.get_xref(E, "web", "x") == "b"


def test_xref_converges_when_a_stale_claim_arrives_after_the_move(
    cache: InMemoryGoldenCache,
) -> None:
    # b v1 took web:x from a; a v1 (still listing it) is applied late, then a v2 drops it
    cache.apply_golden(E, [view("b", 1, "Bob", ("web", "x"))])
    cache.apply_golden(E, [view("a", 1, "Ann", ("crm", "1"), ("web", "x"))])
    cache.apply_golden(E, [view("a", 2, "Ann", ("crm", "1"))])
    assert cache.get_xref(E, "web", "x") == "b"


def test_count_and_clear_are_per_entity(cache: InMemoryGoldenCache) -> None:
    cache.apply_golden(E, [view("g1", 1, "Ann", ("crm", "1")), view("g2", 1, "Bob")])
    cache.apply_golden("product", [view("p1", 1, "Pen")])
    assert cache.count(E) == 2
    assert cache.clear(E) == 5  # two goldens, one xref, the live set, the claim counter
    assert cache.count(E) == 0
    assert cache.get_golden(E, "g1") is None
    assert cache.get_xref(E, "crm", "1") is None
    assert cache.count("product") == 1
    # after a clear, a rebuild may apply version 1 again
    assert cache.apply_golden(E, [view("g1", 1, "Ann")]) == 1


def test_returned_docs_are_copies(cache: InMemoryGoldenCache) -> None:
    cache.apply_golden(E, [view("g1", 1, "Ann")])
    doc = cache.get_golden(E, "g1")
    assert doc is not None
    doc["name"] = "changed"
    assert cache.get_golden(E, "g1") == {"golden_id": "g1", "name": "Ann"}


def test_a_doc_that_is_not_json_is_refused(cache: InMemoryGoldenCache) -> None:
    with pytest.raises(ValueError, match="not JSON-able"):
        cache.apply_golden(E, [GoldenView("g1", 1, {"when": object()})])
    assert cache.version(E, "g1") is None


def test_a_doc_is_stored_as_compact_utf8_json_in_its_own_key_order() -> None:
    text = encode_doc({"z": "Zoë", "a": [1, 2.5, None], "m": {"ok": True}})
    assert text == '{"z":"Zoë","a":[1,2.5,null],"m":{"ok":true}}'
    with pytest.raises(ValueError, match="not JSON-able"):
        encode_doc({"when": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)})  # not written as a string


def test_unavailable_mode_raises_everywhere(cache: InMemoryGoldenCache) -> None:
    cache.apply_golden(E, [view("g1", 1, "Ann", ("crm", "1"))])
    cache.available = False
    calls: list[Callable[[], object]] = [
        lambda: cache.apply_golden(E, [view("g1", 2, "Anna")]),
        lambda: cache.get_golden(E, "g1"),
        lambda: cache.get_xref(E, "crm", "1"),
        cache.ping,
        lambda: cache.count(E),
        lambda: cache.clear(E),
        lambda: cache.apply_history(E, [entry("g1", 1, city="Oslo")]),
        lambda: cache.get_history(E, "g1", limit=10),
        lambda: cache.get_version(E, "g1", 1),
    ]
    for call in calls:
        with pytest.raises(RedisUnavailableError, match="mdhub stack status"):
            call()
    cache.available = True
    assert cache.get_golden(E, "g1") == {"golden_id": "g1", "name": "Ann"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", 1, None), "golden_id"),
        (("g", -1, None), "version"),
        (("g", True, None), "version"),
        (("g", 1, None, (("crm",),)), "pairs"),
        (("g", 1, None, (("a:b", "1"),)), "':'"),
    ],
)
def test_golden_view_refuses_bad_values(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GoldenView(*args)  # type: ignore[arg-type]


# -- history ------------------------------------------------------------------------------------


def entry(gid: str, version: int, **after: str | None) -> HistoryEntry:
    return HistoryEntry(
        gid,
        version,
        {
            "golden_id": gid,
            "entity": E,
            "version": version,
            "status": "active",
            "changed": list(after),
            "before": dict.fromkeys(after),
            "after": after,
            "cause": {
                "kind": "source_change",
                "id": f"c{version}",
                "source": "crm",
                "source_key": "1",
            },
            "occurred_at": f"2026-01-0{version}T00:00:00Z",
        },
    )


def test_history_adds_each_version_once(cache: InMemoryGoldenCache) -> None:
    assert cache.apply_history(E, [entry("g1", 1, city="Oslo"), entry("g1", 2, city="Bergen")]) == 2
    # a re-delivery, and a different event claiming an existing version: both change nothing
    assert cache.apply_history(E, [entry("g1", 2, city="Bergen"), entry("g1", 1, city="X")]) == 0
    assert [e["after"] for e in cache.get_history(E, "g1", limit=10)] == [
        {"city": "Bergen"},
        {"city": "Oslo"},
    ]
    # duplicates inside one call count once
    assert cache.apply_history(E, [entry("g1", 3, city="A"), entry("g1", 3, city="A")]) == 1


def test_history_pages_newest_first(cache: InMemoryGoldenCache) -> None:
    cache.apply_history(E, [entry("g1", v, city=f"c{v}") for v in (3, 1, 5, 2, 4)])
    assert [e["version"] for e in cache.get_history(E, "g1", limit=2)] == [5, 4]
    assert [e["version"] for e in cache.get_history(E, "g1", limit=2, before_version=4)] == [3, 2]
    assert [e["version"] for e in cache.get_history(E, "g1", limit=2, before_version=2)] == [1]
    assert cache.get_history(E, "g1", limit=2, before_version=1) == []
    assert cache.get_history(E, "other", limit=2) == []
    with pytest.raises(ValueError, match="limit"):
        cache.get_history(E, "g1", limit=0)


def test_get_version_folds_the_history(cache: InMemoryGoldenCache) -> None:
    cache.apply_history(
        E,
        [
            entry("g1", 1, city="Oslo", phone="+4711111111"),
            entry("g1", 2, city="Bergen"),
            entry("g1", 3, phone=None),
            entry("g1", 4, phone="+4722222222"),
        ],
    )
    versions = {v: cache.get_version(E, "g1", v) for v in range(1, 5)}
    assert versions[1] == {
        "golden_id": "g1",
        "entity": E,
        "version": 1,
        "status": "active",
        "occurred_at": "2026-01-01T00:00:00Z",
        "attributes": {"city": "Oslo", "phone": "+4711111111"},
    }
    assert versions[2]["attributes"] == {"city": "Bergen", "phone": "+4711111111"}  # type: ignore[index]
    assert versions[3]["attributes"] == {"city": "Bergen"}  # type: ignore[index]
    assert versions[4]["attributes"] == {"city": "Bergen", "phone": "+4722222222"}  # type: ignore[index]
    assert cache.get_version(E, "g1", 5) is None
    assert cache.get_version(E, "nope", 1) is None
    assert cache.get_version("product", "g1", 1) is None


def test_get_version_refuses_a_history_with_a_gap(cache: InMemoryGoldenCache) -> None:
    cache.apply_history(E, [entry("g1", 1, city="Oslo"), entry("g1", 3, city="Bergen")])
    assert cache.get_version(E, "g1", 1) is not None
    with pytest.raises(MdhubError, match="rebuild"):
        cache.get_version(E, "g1", 3)


def test_clear_drops_the_history_too(cache: InMemoryGoldenCache) -> None:
    cache.apply_golden(E, [view("g1", 2, "Ann")])
    cache.apply_history(E, [entry("g1", 1, city="Oslo"), entry("g1", 2, city="Bergen")])
    cache.apply_history(E, [entry("g2", 1, city="Rome")])
    cache.apply_history("product", [entry("p1", 1, city="Pen")])
    assert cache.clear(E) == 4  # the golden, the live set, two histories
    assert cache.get_history(E, "g1", limit=5) == []
    assert cache.get_version(E, "g1", 1) is None
    assert len(cache.get_history("product", "p1", limit=5)) == 1
    assert cache.apply_history(E, [entry("g1", 1, city="Oslo")]) == 1  # a rebuild starts over


def test_returned_history_events_are_copies(cache: InMemoryGoldenCache) -> None:
    cache.apply_history(E, [entry("g1", 1, city="Oslo")])
    cache.get_history(E, "g1", limit=1)[0]["after"]["city"] = "changed"
    assert cache.get_history(E, "g1", limit=1)[0]["after"] == {"city": "Oslo"}


def test_an_erasure_replaces_the_history_and_older_replays_stay_out() -> None:
    from mdhub.cache.history import HistoryEntry

    cache = InMemoryGoldenCache()

    def entry(version: int, status: str) -> HistoryEntry:
        event = {
            "golden_id": "g9", "entity": "customer", "version": version, "status": status,
            "changed": [] if status == "erased" else ["name"],
            "before": {} if status == "erased" else {"name": None},
            "after": {} if status == "erased" else {"name": f"v{version}"},
            "cause": {"kind": "source_change", "id": f"c{version}", "source": None, "source_key": None},
            "occurred_at": "2026-01-01T00:00:00Z",
        }  # fmt: skip
        return HistoryEntry("g9", version, event)

    cache.apply_history("customer", [entry(1, "active"), entry(2, "active")])
    assert cache.apply_history("customer", [entry(3, "erased")]) == 1
    assert [h["version"] for h in cache.get_history("customer", "g9", limit=10)] == [3]
    assert cache.apply_history("customer", [entry(1, "active"), entry(2, "active")]) == 0
    assert [h["status"] for h in cache.get_history("customer", "g9", limit=10)] == ["erased"]
