"""The agent processes each resolve-topic message once, in offset order, or stops."""

from __future__ import annotations

import pytest

from mdhub.stream.continuity import StreamContinuity, StreamGap


def test_a_batch_that_follows_the_committed_offset_is_admitted_whole() -> None:
    continuity = StreamContinuity()
    continuity.start({0: 10})
    assert continuity.admit([(0, 10), (0, 11), (0, 12)]) == [0, 1, 2]
    assert continuity.admit([(0, 13)]) == [0]
    assert continuity.expected == {0: 14}


def test_messages_delivered_again_after_a_seek_are_left_out() -> None:
    continuity = StreamContinuity()
    continuity.start({0: 10})
    assert continuity.admit([(0, 10), (0, 11), (0, 12)]) == [0, 1, 2]
    # a seek back to the committed offset 11 delivers 11 and 12 again, then the new 13
    assert continuity.admit([(0, 11), (0, 12), (0, 13)]) == [2]
    # below the committed offset (the previous owner's messages): left out too
    fresh = StreamContinuity()
    fresh.start({1: 5})
    assert fresh.admit([(1, 3), (1, 4), (1, 5)]) == [2]


def test_missing_messages_stop_the_batch_and_move_nothing() -> None:
    continuity = StreamContinuity()
    continuity.start({0: 10, 1: 0})
    assert continuity.admit([(0, 10), (1, 0)]) == [0, 1]
    with pytest.raises(StreamGap) as gap:
        continuity.admit([(1, 1), (0, 11), (0, 17), (0, 18)])
    assert (gap.value.partition, gap.value.expected, gap.value.got) == (0, 12, 17)
    assert "5 message(s) missing" in str(gap.value)  # 12..16
    assert continuity.expected == {0: 11, 1: 1}  # the failed batch moved no partition
    # the first message after an assignment beyond the committed offset: missing ones too
    fresh = StreamContinuity()
    fresh.start({0: 10})
    with pytest.raises(StreamGap):
        fresh.admit([(0, 12)])


def test_partitions_are_independent_and_forgotten_when_revoked() -> None:
    continuity = StreamContinuity()
    continuity.start({0: 10, 2: 4})
    assert continuity.admit([(2, 4), (0, 10), (2, 5), (0, 11)]) == [0, 1, 2, 3]
    assert continuity.unknown([0, 1, 2]) == {1}
    continuity.forget([0])
    assert continuity.unknown([0, 1, 2]) == {0, 1}
    # reassigned, committed offset 30 (another worker went on): expected from there
    continuity.start({0: 30})
    assert continuity.admit([(0, 29), (0, 30)]) == [1]
    # no start known (Kafka did not answer): the first message delivered is the start
    assert continuity.admit([(1, 7), (1, 8)]) == [0, 1]
    assert continuity.expected == {0: 31, 1: 9, 2: 6}
