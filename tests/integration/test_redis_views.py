"""The Redis read views against a real Redis: version guard, xrefs, batches, outages.

The server is the session's (``redis_url`` from ``conftest.py``); the restart test runs its own.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from mdhub.cache import GoldenView, HistoryEntry, RedisGoldenCache
from mdhub.errors import MdhubError, RedisUnavailableError
from mdhub.naming import redis_key

pytestmark = pytest.mark.integration

E = "customer"
REDIS_SERVER = "/usr/bin/redis-server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _wait_until_answers(url: str, proc: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if proc is not None and proc.poll() is not None:
                pytest.fail(f"redis-server exited with {proc.returncode} before answering")
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(f"Redis at {url} did not answer within {timeout_s} s")
                time.sleep(0.02)  # polling a condition with a deadline, not synchronising
    finally:
        client.close()


def _start_redis(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    if not shutil.which(REDIS_SERVER):
        pytest.fail(f"{REDIS_SERVER} is missing; install redis-server or set MDHUB_TEST_REDIS_URL")
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(workdir)],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_until_answers(f"redis://127.0.0.1:{port}/0", proc, timeout_s=10)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def cache(redis_url: str) -> Iterator[RedisGoldenCache]:
    cache = RedisGoldenCache.from_url(redis_url, "t" + uuid.uuid4().hex[:10], 2.0)
    try:
        yield cache
    finally:
        for entity in (E, "product"):
            cache.clear(entity)
        cache.close()


def view(gid: str, version: int, name: str | None, *xrefs: tuple[str, str]) -> GoldenView:
    doc = None if name is None else {"golden_id": gid, "name": name, "tags": ["a", "ü"]}
    return GoldenView(gid, version, doc, tuple(xrefs))


def doc(gid: str, name: str) -> dict[str, object]:
    return {"golden_id": gid, "name": name, "tags": ["a", "ü"]}


def test_newer_version_wins(cache: RedisGoldenCache) -> None:
    assert cache.apply_golden(E, [view("g1", 1, "Ann", ("crm", "1"))]) == 1
    assert cache.apply_golden(E, [view("g1", 2, "Anna", ("crm", "1"))]) == 1
    assert cache.get_golden(E, "g1") == doc("g1", "Anna")
    assert cache.version(E, "g1") == 2
    assert cache.get_xref(E, "crm", "1") == "g1"


def test_xrefs_of_several_records_are_read_together(cache: RedisGoldenCache) -> None:
    cache.apply_golden(E, [view("g1", 1, "Ann", ("crm", "1")), view("g2", 1, "Bo", ("web", "2"))])
    # a source name never holds ":" (GoldenView refuses it): no view to find
    asked = [("web", "2"), ("crm", "9"), ("crm", "1"), ("crm:1", "x")]
    assert cache.get_xrefs(E, asked) == ["g2", None, "g1", None]
    assert cache.get_xrefs(E, []) == []


@pytest.mark.parametrize("replayed", [1, 2])
def test_same_or_older_version_changes_nothing(cache: RedisGoldenCache, replayed: int) -> None:
    cache.apply_golden(E, [view("g1", 1, "Ann", ("crm", "1")), view("g1", 2, "Anna", ("crm", "1"))])
    assert cache.apply_golden(E, [view("g1", replayed, "Old", ("web", "9"))]) == 0
    assert cache.get_golden(E, "g1") == doc("g1", "Anna")
    assert cache.version(E, "g1") == 2
    assert cache.get_xref(E, "web", "9") is None
    assert cache.get_xref(E, "crm", "1") == "g1"


def test_versions_compare_as_numbers_not_text(cache: RedisGoldenCache) -> None:
    cache.apply_golden(E, [view("g1", 9, "nine")])
    assert cache.apply_golden(E, [view("g1", 10, "ten")]) == 1
    assert cache.apply_golden(E, [view("g1", 9, "nine")]) == 0
    assert cache.get_golden(E, "g1") == doc("g1", "ten")


def test_many_views_in_one_call_span_several_pipelines(cache: RedisGoldenCache) -> None:
    views = [view(f"g{i}", 1, f"n{i}", ("crm", str(i))) for i in range(1234)]
    assert cache.apply_golden(E, views) == 1234
    assert cache.count(E) == 1234
    assert cache.get_golden(E, "g1233") == doc("g1233", "n1233")
    assert cache.get_xref(E, "crm", "777") == "g777"
    # a replay of the whole lot, plus newer versions of a few, applies only the newer ones
    newer = [view(f"g{i}", 2, f"m{i}", ("crm", str(i))) for i in range(0, 1234, 100)]
    assert cache.apply_golden(E, views + newer) == len(newer)
    assert cache.get_golden(E, "g500") == doc("g500", "m500")


def test_versions_in_one_call_end_with_the_highest(cache: RedisGoldenCache) -> None:
    applied = cache.apply_golden(E, [view("g1", 3, "C"), view("g1", 2, "B"), view("g1", 4, "D")])
    assert applied == 2
    assert cache.get_golden(E, "g1") == doc("g1", "D")


def test_a_source_that_leaves_loses_its_xref(cache: RedisGoldenCache) -> None:
    cache.apply_golden(E, [view("g1", 1, "Ann", ("crm", "1"), ("web", "a"))])
    cache.apply_golden(E, [view("g1", 2, "Ann", ("crm", "1"))])
    assert cache.get_xref(E, "crm", "1") == "g1"
    assert cache.get_xref(E, "web", "a") is None


def test_xref_moves_to_the_record_a_source_joins(cache: RedisGoldenCache) -> None:
    cache.apply_golden(E, [view("a", 1, "Ann", ("crm", "1"), ("web", "x"))])
    cache.apply_golden(E, [view("b", 1, "Bob", ("erp", "7"), ("web", "x"))])
    assert cache.get_xref(E, "web", "x") == "b"
    cache.apply_golden(E, [view("a", 2, "Ann", ("crm", "1"))])  # a lets it go: b keeps it
    assert cache.get_xref(E, "web", "x") == "b"
    assert cache.get_xref(E, "crm", "1") == "a"


def test_the_newest_claim_answers_while_two_records_list_a_source(cache: RedisGoldenCache) -> None:
    # b took web:x; a's next version, decided before the move, still lists it: b keeps answering
    cache.apply_golden(E, [view("a", 1, "Ann", ("web", "x"))])
    cache.apply_golden(E, [view("b", 1, "Bob", ("web", "x"))])
    cache.apply_golden(E, [view("a", 2, "Ann B.", ("web", "x"))])
    assert cache.get_xref(E, "web", "x") == "b"
    cache.apply_golden(E, [view("a", 3, "Ann B.")])
    assert cache.get_xref(E, "web", "x") == "b"


def test_xref_converges_when_a_stale_claim_arrives_after_the_move(cache: RedisGoldenCache) -> None:
    cache.apply_golden(E, [view("b", 1, "Bob", ("web", "x"))])
    cache.apply_golden(E, [view("a", 1, "Ann", ("crm", "1"), ("web", "x"))])  # late, stale
    cache.apply_golden(E, [view("a", 2, "Ann", ("crm", "1"))])
    assert cache.get_xref(E, "web", "x") == "b"


def test_gone_doc_drops_doc_and_xrefs_and_blocks_older_replays(cache: RedisGoldenCache) -> None:
    cache.apply_golden(E, [view("g1", 1, "Ann", ("crm", "1"), ("web", "a"))])
    assert cache.count(E) == 1
    assert cache.apply_golden(E, [view("g1", 2, None)]) == 1
    assert cache.get_golden(E, "g1") is None
    assert cache.get_xref(E, "crm", "1") is None
    assert cache.get_xref(E, "web", "a") is None
    assert cache.count(E) == 0
    assert cache.version(E, "g1") == 2
    assert cache.apply_golden(E, [view("g1", 1, "Ann", ("crm", "1"))]) == 0
    assert cache.get_golden(E, "g1") is None
    assert cache.get_xref(E, "crm", "1") is None


def test_key_layout(cache: RedisGoldenCache, redis_url: str) -> None:
    ns = cache.namespace
    cache.apply_golden(E, [view("g1", 7, "Ann", ("crm", "C:1"))])
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        golden = raw.hgetall(redis_key(ns, E, "golden", "g1"))
        assert golden["version"] == "7"
        assert golden["doc"] == '{"golden_id":"g1","name":"Ann","tags":["a","ü"]}'
        xref = redis_key(ns, E, "xref", "crm", "C:1")
        assert raw.zrange(xref, 0, -1) == ["g1"]
        assert raw.smembers(redis_key(ns, E, "meta", "live")) == {"g1"}
    finally:
        raw.close()
    assert cache.get_xref(E, "crm", "C:1") == "g1"


def test_clear_and_count_are_per_entity(cache: RedisGoldenCache) -> None:
    cache.apply_golden(E, [view("g1", 1, "Ann", ("crm", "1")), view("g2", 1, "Bob")])
    cache.apply_golden("product", [view("p1", 1, "Pen")])
    assert cache.count(E) == 2
    assert cache.clear(E) == 5  # two goldens, one xref, the live set, the claim counter
    assert cache.count(E) == 0
    assert cache.get_golden(E, "g1") is None
    assert cache.get_xref(E, "crm", "1") is None
    assert cache.count("product") == 1
    assert cache.clear(E) == 0
    assert cache.apply_golden(E, [view("g1", 1, "Ann")]) == 1  # a rebuild starts over


def test_clear_scans_past_one_batch(cache: RedisGoldenCache) -> None:
    cache.apply_golden(E, [view(f"g{i}", 1, "x") for i in range(2500)])
    assert cache.clear(E) == 2500 + 1  # the goldens and the live set (no xrefs, no counter)
    assert cache.count(E) == 0


def test_script_is_reloaded_after_a_script_flush(cache: RedisGoldenCache, redis_url: str) -> None:
    cache.apply_golden(E, [view("g1", 1, "Ann")])
    raw = redis.Redis.from_url(redis_url)
    try:
        raw.script_flush()
    finally:
        raw.close()
    assert cache.apply_golden(E, [view("g1", 2, "Anna")]) == 1
    assert cache.get_golden(E, "g1") == doc("g1", "Anna")


def test_closed_port_raises_redis_unavailable_not_a_redis_error() -> None:
    port = _free_port()
    cache = RedisGoldenCache.from_url(f"redis://:s3cret@127.0.0.1:{port}/0", "tclosed", 0.5)
    calls: list[Callable[[], object]] = [
        cache.ping,
        lambda: cache.get_golden(E, "g1"),
        lambda: cache.get_xref(E, "crm", "1"),
        lambda: cache.apply_golden(E, [view("g1", 1, "Ann")]),
        lambda: cache.count(E),
        lambda: cache.clear(E),
        lambda: cache.apply_history(E, [entry("g1", 1, city="Oslo")]),
        lambda: cache.get_history(E, "g1", limit=5),
        lambda: cache.get_version(E, "g1", 1),
    ]
    for call in calls:
        with pytest.raises(RedisUnavailableError) as caught:
            call()
        assert not isinstance(caught.value, redis.RedisError)
        assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)
        message = str(caught.value)
        assert f"redis://127.0.0.1:{port}/0" in message
        assert "mdhub stack status" in message
        assert "s3cret" not in message
    cache.close()


def test_the_cache_recovers_after_a_redis_restart(tmp_path: Path) -> None:
    port = _free_port()
    proc = _start_redis(tmp_path / "r1", port)
    cache = RedisGoldenCache.from_url(f"redis://127.0.0.1:{port}/0", "trestart", 1.0)
    try:
        assert cache.apply_golden(E, [view("g1", 1, "Ann")]) == 1
        _stop(proc)
        with pytest.raises(RedisUnavailableError):
            cache.get_golden(E, "g1")
        proc = _start_redis(tmp_path / "r2", port)
        # the same client reconnects; the empty Redis needs a rebuild, and takes it
        assert cache.get_golden(E, "g1") is None
        assert cache.apply_golden(E, [view("g1", 1, "Ann")]) == 1
        assert cache.get_golden(E, "g1") == doc("g1", "Ann")
    finally:
        cache.close()
        _stop(proc)


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
                "source_key": "ü",
            },
            "occurred_at": f"2026-01-{version:02d}T00:00:00Z",
        },
    )


def test_history_adds_each_version_once(cache: RedisGoldenCache) -> None:
    assert cache.apply_history(E, [entry("g1", 1, city="Oslo"), entry("g1", 2, city="Bergen")]) == 2
    # a re-delivery, and a different event claiming a version already there: no change
    assert cache.apply_history(E, [entry("g1", 2, city="Bergen"), entry("g1", 1, city="X")]) == 0
    assert cache.apply_history(E, [entry("g1", 3, city="A"), entry("g1", 3, city="A")]) == 1
    assert [e["after"] for e in cache.get_history(E, "g1", limit=10)] == [
        {"city": "A"},
        {"city": "Bergen"},
        {"city": "Oslo"},
    ]


def test_history_pages_newest_first_with_numeric_versions(cache: RedisGoldenCache) -> None:
    cache.apply_history(E, [entry("g1", v, city=f"c{v}") for v in (3, 1, 12, 2, 11, 10, 9, 8)])
    cache.apply_history(E, [entry("g1", v, city=f"c{v}") for v in range(4, 8)])
    assert [e["version"] for e in cache.get_history(E, "g1", limit=3)] == [12, 11, 10]
    assert [e["version"] for e in cache.get_history(E, "g1", limit=3, before_version=10)] == [
        9,
        8,
        7,
    ]
    assert [e["version"] for e in cache.get_history(E, "g1", limit=5, before_version=3)] == [2, 1]
    assert cache.get_history(E, "g1", limit=3, before_version=1) == []
    assert cache.get_history(E, "nope", limit=3) == []


def test_get_version_folds_the_history(cache: RedisGoldenCache) -> None:
    cache.apply_history(
        E,
        [
            entry("g1", 1, city="Oslo", phone="+4711111111"),
            entry("g1", 2, city="Bergen"),
            entry("g1", 3, phone=None),
            entry("g1", 4, phone="+4722222222"),
        ],
    )
    assert cache.get_version(E, "g1", 1) == {
        "golden_id": "g1",
        "entity": E,
        "version": 1,
        "status": "active",
        "occurred_at": "2026-01-01T00:00:00Z",
        "attributes": {"city": "Oslo", "phone": "+4711111111"},
    }
    attributes = {v: cache.get_version(E, "g1", v)["attributes"] for v in (2, 3, 4)}  # type: ignore[index]
    assert attributes[2] == {"city": "Bergen", "phone": "+4711111111"}
    assert attributes[3] == {"city": "Bergen"}
    assert attributes[4] == {"city": "Bergen", "phone": "+4722222222"}
    assert cache.get_version(E, "g1", 5) is None
    assert cache.get_version(E, "g1", 0) is None
    assert cache.get_version(E, "nope", 1) is None


def test_get_version_refuses_a_history_with_a_gap(cache: RedisGoldenCache) -> None:
    cache.apply_history(E, [entry("g1", 1, city="Oslo"), entry("g1", 3, city="Bergen")])
    with pytest.raises(MdhubError, match="rebuild"):
        cache.get_version(E, "g1", 3)


def test_many_history_entries_span_several_pipelines(cache: RedisGoldenCache) -> None:
    entries = [entry(f"g{i % 100}", i // 100 + 1, city=str(i)) for i in range(1234)]
    assert cache.apply_history(E, entries) == 1234
    assert cache.apply_history(E, entries) == 0
    assert [e["version"] for e in cache.get_history(E, "g33", limit=100)] == list(range(13, 0, -1))
    assert cache.get_version(E, "g33", 13)["attributes"] == {"city": "1233"}  # type: ignore[index]


def test_history_key_layout_and_clear(cache: RedisGoldenCache, redis_url: str) -> None:
    ns = cache.namespace
    cache.apply_golden(E, [view("g1", 2, "Ann")])
    cache.apply_history(E, [entry("g1", 1, city="Oslo"), entry("g1", 2, city="Bergen")])
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        key = redis_key(ns, E, "history", "g1")
        assert raw.type(key) == "zset"
        stored = raw.zrange(key, 0, -1, withscores=True)
        assert [score for _, score in stored] == [1.0, 2.0]
        assert '"source_key":"ü"' in stored[0][0]  # compact JSON, not ASCII-escaped
    finally:
        raw.close()
    assert cache.clear(E) == 3  # the golden, the live set, the history
    assert cache.get_history(E, "g1", limit=5) == []
    assert cache.apply_history(E, [entry("g1", 1, city="Oslo")]) == 1  # a rebuild starts over


def test_an_erasure_replaces_the_history_and_older_replays_stay_out(
    cache: RedisGoldenCache,
) -> None:
    from mdhub.cache.history import HistoryEntry

    def entry(version: int, status: str) -> HistoryEntry:
        event = {
            "golden_id": "g9", "entity": E, "version": version, "status": status,
            "changed": [] if status == "erased" else ["name"],
            "before": {} if status == "erased" else {"name": None},
            "after": {} if status == "erased" else {"name": f"v{version}"},
            "cause": {"kind": "source_change", "id": f"c{version}", "source": None, "source_key": None},
            "occurred_at": "2026-01-01T00:00:00Z",
        }  # fmt: skip
        return HistoryEntry("g9", version, event)

    cache.apply_history(E, [entry(1, "active"), entry(2, "active")])
    assert cache.apply_history(E, [entry(3, "erased")]) == 1
    assert [h["version"] for h in cache.get_history(E, "g9", limit=10)] == [3]
    assert cache.apply_history(E, [entry(1, "active"), entry(2, "active")]) == 0
    assert [h["status"] for h in cache.get_history(E, "g9", limit=10)] == ["erased"]


def test_the_fill_marker_names_one_epoch_per_loss_and_its_partitions(
    cache: RedisGoldenCache, redis_url: str
) -> None:
    other = RedisGoldenCache.from_url(redis_url, cache.namespace, 2.0)  # another projector
    try:
        epoch, filled = cache.fill_state(E)
        assert other.fill_state(E) == (epoch, set())  # whoever sees the loss first makes it
        assert filled == set()
        cache.mark_partitions_filled(E, epoch, ["t.golden:0", "t.changes:0"])
        other.mark_partitions_filled(E, epoch, ["t.golden:1"])
        assert other.fill_state(E) == (epoch, {"t.golden:0", "t.changes:0", "t.golden:1"})
        assert cache.fill_state("product")[1] == set()
        raw = redis.Redis.from_url(redis_url)
        try:
            raw.delete(redis_key(cache.namespace, E, "meta", "fill"))  # lost, as in a flush
        finally:
            raw.close()
        stale = ["t.golden:0"]
        cache.mark_partitions_filled(E, epoch, stale)  # a projector still in the old fill
        renewed, filled = other.fill_state(E)
        assert renewed != epoch
        assert filled == set()  # the stale mark counts for nothing
        cache.clear(E)
        assert cache.fill_state(E)[0] not in (epoch, renewed)
    finally:
        other.close()
