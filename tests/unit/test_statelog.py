"""A batch's state records count once its commit marker is read; an unfinished batch never."""

from __future__ import annotations

from mdhub.stream.statelog import BEGIN_KEY, COMMIT_KEY, BatchFilter


def feed(batches: BatchFilter, records: list[tuple[int, bytes, bytes | None]], partition: int = 0):
    out: list[tuple[bytes, bytes | None]] = []
    for offset, key, value in records:
        out += batches.add(partition, offset, key, value)
    return out


def test_a_batch_counts_at_its_commit_in_offset_order() -> None:
    batches = BatchFilter()
    assert batches.add(0, 0, BEGIN_KEY, b"3") == []
    assert batches.add(0, 1, b"g1", b"v1") == []
    assert batches.add(0, 2, b"g2", None) == []  # a deletion
    assert batches.add(0, 3, b"g1", b"v1b") == []
    assert batches.applied_through(0, 3) == -1  # nothing counts yet: restore again from BEGIN
    assert batches.add(0, 4, COMMIT_KEY, b"3") == [(b"g1", b"v1"), (b"g2", None), (b"g1", b"v1b")]
    assert batches.applied_through(0, 4) == 4
    assert batches.uncommitted(0) == []


def test_an_unfinished_batch_is_held_and_named() -> None:
    batches = BatchFilter()
    done = feed(batches, [(10, BEGIN_KEY, b"1"), (11, b"a", b"1"), (12, COMMIT_KEY, b"1")])
    assert done == [(b"a", b"1")]
    # a worker killed while writing the next batch: BEGIN and two of its records, no COMMIT
    assert feed(batches, [(13, BEGIN_KEY, b"3"), (14, b"a", b"2"), (15, b"b", b"2")]) == []
    assert batches.uncommitted(0) == [b"a", b"b"]
    assert batches.applied_through(0, 15) == 12  # the store says: restore again from 13
    # read again from there (a restore resumed): held once
    assert feed(batches, [(13, BEGIN_KEY, b"3"), (14, b"a", b"2"), (15, b"b", b"2")]) == []
    assert batches.uncommitted(0) == [b"a", b"b"]
    batches.discard(0)
    assert batches.uncommitted(0) == [] and batches.applied_through(0, 15) == 15


def test_the_batch_that_undoes_an_unfinished_one_ends_in_the_values_before_it() -> None:
    log = [
        (0, BEGIN_KEY, b"1"), (1, b"a", b"1"), (2, COMMIT_KEY, b"1"),
        (3, BEGIN_KEY, b"2"), (4, b"a", b"2"), (5, b"b", b"2"),  # unfinished
        (6, BEGIN_KEY, b"2"), (7, b"a", b"1"), (8, b"b", None), (9, COMMIT_KEY, b"2"),  # undone
    ]  # fmt: skip
    state: dict[bytes, bytes | None] = {}
    for key, value in feed(BatchFilter(), log):
        state[key] = value
    assert state == {b"a": b"1", b"b": None}
    # compaction removed the first BEGIN and COMMIT and the unfinished batch's BEGIN (newer ones
    # exist), and record 1 (key a has newer ones): the unfinished records apply as they come,
    # the undoing batch after them
    compacted = [r for r in log if r[0] not in (0, 1, 2, 3)]
    state = {}
    for key, value in feed(BatchFilter(), compacted):
        state[key] = value
    assert state == {b"a": b"1", b"b": None}


def test_records_without_markers_apply_at_once_and_partitions_are_apart() -> None:
    batches = BatchFilter()
    assert batches.add(0, 0, b"old", b"x") == [(b"old", b"x")]  # written before markers
    assert batches.add(0, 1, None, b"foreign") == []  # no key: not the hub's
    assert batches.add(1, 0, BEGIN_KEY, b"1") == []
    assert batches.add(0, 2, b"more", b"y") == [(b"more", b"y")]
    assert batches.add(1, 1, b"p1", b"z") == []
    assert batches.add(0, 3, COMMIT_KEY, b"0") == []  # a COMMIT whose BEGIN was compacted away
    assert batches.uncommitted(1) == [b"p1"] and batches.uncommitted(0) == []
    assert batches.add(1, 2, COMMIT_KEY, b"1") == [(b"p1", b"z")]
