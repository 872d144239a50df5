"""The worker's stall watch: inputs waiting and no batch for the timeout is a stall, nothing else."""

from __future__ import annotations

from mdhub.stream.stall import StallWatch


def test_waiting_inputs_without_a_batch_for_the_timeout_is_a_stall() -> None:
    watch = StallWatch(timeout=60)
    watch.batch_started(0.0)
    assert not watch.check(lag=3666, now=10.0)  # first seen waiting
    assert not watch.check(lag=3666, now=69.0)
    assert watch.check(lag=3666, now=70.0)


def test_a_batch_after_the_inputs_were_seen_starts_the_wait_over() -> None:
    watch = StallWatch(timeout=60)
    assert not watch.check(lag=10, now=0.0)
    watch.batch_started(30.0)
    assert not watch.check(lag=10, now=61.0)  # progress since: a new wait begins here
    assert not watch.check(lag=10, now=120.0)
    assert watch.check(lag=10, now=121.0)


def test_no_lag_or_no_answer_from_kafka_is_never_a_stall() -> None:
    watch = StallWatch(timeout=60)
    assert not watch.check(lag=5, now=0.0)
    assert not watch.check(lag=None, now=100.0)  # the broker is away: start over
    assert not watch.check(lag=5, now=110.0)
    assert not watch.check(lag=0, now=200.0)  # caught up
    assert not watch.check(lag=5, now=210.0)
    assert not watch.check(lag=5, now=260.0)
    assert watch.check(lag=5, now=270.0)


def test_a_batch_that_never_finishes_while_kafka_answers_is_a_stall() -> None:
    watch = StallWatch(timeout=60)
    watch.batch_started(0.0)  # its outputs are never delivered
    assert not watch.check(lag=1000, now=5.0)
    assert watch.check(lag=1000, now=65.0)
