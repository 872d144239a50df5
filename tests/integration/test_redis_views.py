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

from mdhub.cache import GoldenView, RedisGoldenCache
from mdhub.errors import RedisUnavailableError
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
