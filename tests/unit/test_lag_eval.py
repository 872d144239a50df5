"""The lag evaluation (mdhub.ops.lag) on recorded offset series: every status and the edge cases."""

from __future__ import annotations

import math
from collections import deque

import pytest

from mdhub.ops.lag import (
    GroupInfo,
    LagSnapshot,
    LagTracker,
    OffsetSample,
    PartitionKey,
    Status,
    evaluate_partition,
    window_of,
)

KEY = PartitionKey("mdhub-worker", "mdhub.customer.source.v1", 0)


def series(
    *rows: tuple[int | None, int],
    step: float = 5.0,
    start: float = 1000.0,
    owned: bool | None = True,
) -> list[OffsetSample]:
    """Samples ``step`` seconds apart from ``(committed, log_end)`` rows."""
    return [
        OffsetSample(at=start + i * step, log_end=end, committed=committed, owned=owned)
        for i, (committed, end) in enumerate(rows)
    ]


def judge(samples: list[OffsetSample], window_s: float = 60.0, **kw: float) -> Status:
    return evaluate_partition(KEY, samples, window_s, **kw).status


def test_statuses_are_ordered_by_severity() -> None:
    order = [Status.OK, Status.WARN, Status.REWIND, Status.STALL, Status.STOP, Status.ERR]
    assert [s.severity for s in order] == list(range(6))


def test_no_samples_is_err() -> None:
    result = evaluate_partition(KEY, [], 60)
    assert result.status is Status.ERR
    assert result.lag is None


def test_no_lag_is_ok_even_without_any_commit() -> None:
    empty = [OffsetSample(at=1000.0, log_end=0), OffsetSample(at=1005.0, log_end=0)]
    assert judge(empty) is Status.OK
    retention_ate_it = [OffsetSample(at=t, log_end=50, log_start=50) for t in (1000.0, 1100.0)]
    result = evaluate_partition(KEY, retention_ate_it, 60)
    assert (result.status, result.lag, result.lag_seconds, result.eta_seconds) == (
        Status.OK, 0, 0.0, 0.0,
    )  # fmt: skip


def test_no_lag_is_ok_even_when_the_offset_never_moves_for_long() -> None:
    idle = series((500, 500), (500, 500), (500, 500), step=120)
    assert judge(idle) is Status.OK


def test_first_sample_with_lag_is_ok_without_rates() -> None:
    result = evaluate_partition(KEY, series((10, 40)), 60)
    assert result.status is Status.OK
    assert "first sample" in result.reason
    assert (result.lag, result.consume_rate, result.produce_rate, result.eta_seconds) == (
        30, None, None, None,
    )  # fmt: skip


def test_consuming_faster_than_producing_is_ok_with_an_eta() -> None:
    # 10 s apart: consumer +300, producer +100 -> 30/s vs 10/s, lag 500 -> 300
    result = evaluate_partition(KEY, series((0, 500), (300, 600), step=10), 60)
    assert result.status is Status.OK
    assert result.consume_rate == pytest.approx(30.0)
    assert result.produce_rate == pytest.approx(10.0)
    assert result.lag == 300
    assert result.eta_seconds == pytest.approx(300 / 20)


def test_lag_growing_while_committing_is_warn_and_never_catches_up() -> None:
    result = evaluate_partition(KEY, series((0, 100), (50, 200), (100, 300)), 60)
    assert result.status is Status.WARN
    assert "grew from 100 to 200" in result.reason
    assert result.eta_seconds == math.inf


def test_constant_lag_while_committing_is_ok() -> None:
    assert judge(series((0, 100), (50, 150), (100, 200))) is Status.OK


def test_offset_not_moving_with_growing_lag_is_warn_before_the_window_is_over() -> None:
    # a live consumer paused 10 s ago: could be between two commits, not yet a stall
    assert judge(series((100, 200), (100, 250), (100, 300)), window_s=60) is Status.WARN


def test_offset_not_moving_with_constant_lag_is_ok_before_the_window_is_over() -> None:
    assert judge(series((100, 200), (100, 200)), window_s=60) is Status.OK


def test_live_member_not_moving_for_the_whole_window_is_stall() -> None:
    samples = series(*[(100, 200)] * 13, step=5, owned=True)  # 60 s without progress
    result = evaluate_partition(KEY, samples, 60)
    assert result.status is Status.STALL
    assert "60 s" in result.reason
    assert "live member" in result.reason


def test_no_commit_for_the_whole_window_is_stop() -> None:
    samples = series(*[(100, 200 + i) for i in range(13)], step=5, owned=None)
    assert judge(samples, window_s=60) is Status.STOP


def test_no_member_and_an_offset_that_does_not_move_is_stop_at_once() -> None:
    assert judge(series((100, 200), (100, 210), owned=False), window_s=60) is Status.STOP


def test_a_group_that_never_committed_and_has_no_member_is_stop() -> None:
    samples = series((None, 20), (None, 20), owned=False)
    result = evaluate_partition(KEY, samples, 60)
    assert (result.status, result.lag) == (Status.STOP, 20)
    assert "nothing has been committed" in result.reason


def test_offset_since_reaches_back_before_the_window() -> None:
    # only two samples in the window, but the offset has been 100 since t=900
    samples = series((100, 200), (100, 200), start=1000, step=5)
    assert judge(samples, window_s=60) is Status.OK
    assert judge(samples, window_s=60, offset_since=900.0) is Status.STALL


def test_committed_offset_going_back_is_rewind() -> None:
    result = evaluate_partition(KEY, series((500, 600), (100, 600)), 60)
    assert result.status is Status.REWIND
    assert "from 500 to 100" in result.reason


def test_rewind_wins_over_no_lag() -> None:
    # a reset to the beginning, a moment after the consumer was caught up
    assert judge(series((500, 500), (0, 500))) is Status.REWIND


def test_rewind_ages_out_of_the_window() -> None:
    samples = series((500, 600), (100, 600), (300, 600), (590, 600), step=30)
    assert judge(samples, window_s=60) is Status.OK


def test_a_zero_lag_inside_the_window_keeps_ok() -> None:
    # the consumer was caught up 5 s ago; a burst arrived since (Burrow's first rule)
    assert judge(series((100, 100), (100, 400))) is Status.OK


def test_committed_beyond_the_log_end_is_err() -> None:
    result = evaluate_partition(KEY, series((900, 100)), 60)
    assert result.status is Status.ERR
    assert "beyond the log end" in result.reason


def test_log_end_going_back_is_err() -> None:
    assert judge(series((0, 500), (0, 10))) is Status.ERR


def test_lag_seconds_is_the_age_of_the_message_at_the_committed_offset() -> None:
    lagging = OffsetSample(at=1000.0, log_end=50, committed=40, committed_timestamp=970.5)
    assert evaluate_partition(KEY, [lagging], 60).lag_seconds == pytest.approx(29.5)
    unknown = OffsetSample(at=1000.0, log_end=50, committed=40)
    assert evaluate_partition(KEY, [unknown], 60).lag_seconds is None
    clock_skew = OffsetSample(at=1000.0, log_end=50, committed=40, committed_timestamp=1010.0)
    assert evaluate_partition(KEY, [clock_skew], 60).lag_seconds == 0.0
    caught_up = OffsetSample(at=1000.0, log_end=50, committed=50, committed_timestamp=10.0)
    assert evaluate_partition(KEY, [caught_up], 60).lag_seconds == 0.0


def test_the_window_keeps_at_least_two_samples() -> None:
    samples = series((0, 10), (5, 10), (6, 20), step=100)
    assert [s.at for s in window_of(samples, 60)] == [1100.0, 1200.0]
    assert [s.at for s in window_of(samples, 250)] == [1000.0, 1100.0, 1200.0]
    assert window_of([], 60) == []
    # the tracker keeps each partition's samples in a deque, which does not slice
    assert [s.at for s in window_of(deque(samples, maxlen=10), 60)] == [1100.0, 1200.0]


# A recorded series (one sample every 5 s): a worker keeps up, falls behind under a burst,
# catches up, then its process dies while the producers go on.
RECORDED = [
    # (committed, log_end, live member owns the partition)
    (1000, 1000, True),
    (1200, 1210, True),
    (1400, 1400, True),
    (1600, 2600, True),  # burst of 1000
    (1800, 3600, True),
    (2000, 4600, True),
    (3000, 4700, True),
    (4700, 4700, True),  # caught up
    (4800, 4800, True),
    (4800, 4900, False),  # the process died: the group is empty
    (4800, 5000, False),
    (4800, 5100, False),
]
EXPECTED = [
    Status.OK,  # first sample
    Status.OK,  # caught up within the window
    Status.OK,
    Status.OK,  # the zero lag of the previous sample is still in the window
    Status.OK,
    Status.WARN,  # every sample in the window lags, and the lag grows
    Status.OK,  # gaining on the producers
    Status.OK,
    Status.OK,
    Status.OK,  # caught up 5 s ago
    Status.OK,  # ... and 10 s ago, still inside the 12 s window
    Status.STOP,  # no member, offset static, lagging across the window
]


def test_a_recorded_series_through_the_tracker() -> None:
    tracker = LagTracker(window_s=12)
    seen = []
    for i, (committed, end, owned) in enumerate(RECORDED):
        at = 1000.0 + 5 * i
        sample = OffsetSample(at=at, log_end=end, committed=committed, owned=owned)
        tracker.observe(LagSnapshot(at, {KEY: sample}, {KEY.group: GroupInfo("STABLE", 1)}))
        (group,) = tracker.report().groups
        seen.append(group.status)
    assert seen == EXPECTED


def test_the_tracker_remembers_since_when_an_offset_stands_still() -> None:
    tracker = LagTracker(window_s=30)
    for i in range(10):  # 45 s at offset 100 with lag, owned by a live member
        at = 1000.0 + 5 * i
        sample = OffsetSample(at=at, log_end=200, committed=100, owned=True)
        tracker.observe(LagSnapshot(at, {KEY: sample}))
    part = tracker.report().groups[0].partitions[0]
    assert part.status is Status.STALL
    assert "45 s" in part.reason


def test_the_group_status_is_its_worst_partition() -> None:
    tracker = LagTracker(window_s=60)
    other = PartitionKey(KEY.group, KEY.topic, 1)
    third = PartitionKey(KEY.group, KEY.topic, 2)
    for at, c0, c1 in ((1000.0, 100, 0), (1005.0, 150, 0)):
        tracker.observe(
            LagSnapshot(
                at,
                {
                    KEY: OffsetSample(at=at, log_end=200, committed=c0, owned=True),
                    other: OffsetSample(at=at, log_end=50, committed=c1, owned=False),
                    third: OffsetSample(at=at, log_end=7, committed=7, owned=True),
                },
                {KEY.group: GroupInfo("STABLE", 2)},
            )
        )
    (group,) = tracker.report().groups
    assert [p.status for p in group.partitions] == [Status.OK, Status.STOP, Status.OK]
    assert group.status is Status.STOP
    assert group.reason.startswith(f"{KEY.topic}[1]: no live member")
    assert group.lag == 50 + 50
    assert (group.info.state, group.info.members) == ("STABLE", 2)


def test_partitions_that_disappear_are_forgotten_but_errors_keep_them() -> None:
    tracker = LagTracker(window_s=60)
    sample = OffsetSample(at=1000.0, log_end=10, committed=5)
    tracker.observe(LagSnapshot(1000.0, {KEY: sample}))
    tracker.observe(LagSnapshot(1005.0, {}, errors={KEY.group: "coordinator not available"}))
    (group,) = tracker.report().groups
    assert group.status is Status.ERR
    assert group.partitions[0].status is Status.ERR
    assert group.partitions[0].reason == "coordinator not available"
    assert group.partitions[0].lag == 5  # the last figures are kept
    tracker.observe(LagSnapshot(1010.0, {}))
    assert tracker.report().groups == ()


def test_a_group_that_cannot_be_read_at_all_is_err() -> None:
    tracker = LagTracker(window_s=60)
    tracker.observe(LagSnapshot(1000.0, {}, errors={"ext-billing": "not authorized"}))
    (group,) = tracker.report().groups
    assert (group.group, group.status, group.partitions) == ("ext-billing", Status.ERR, ())


def test_a_failed_poll_turns_every_partition_err_until_the_next_good_one() -> None:
    tracker = LagTracker(window_s=60)
    tracker.observe(LagSnapshot(1000.0, {KEY: OffsetSample(at=1000.0, log_end=3, committed=3)}))
    tracker.observe_failure(1005.0, "Kafka unreachable")
    report = tracker.report()
    assert report.at == 1005.0
    assert report.groups[0].partitions[0].status is Status.ERR
    tracker.observe(LagSnapshot(1010.0, {KEY: OffsetSample(at=1010.0, log_end=3, committed=3)}))
    assert tracker.report().groups[0].status is Status.OK


def test_the_tracker_prunes_to_the_window() -> None:
    tracker = LagTracker(window_s=10)
    for i in range(50):
        at = 1000.0 + i
        tracker.observe(LagSnapshot(at, {KEY: OffsetSample(at=at, log_end=i, committed=i)}))
    assert len(tracker._series[KEY]) <= 12
    with pytest.raises(ValueError, match="window_s"):
        LagTracker(window_s=0)
