"""Consumer-lag evaluation over a sliding window of offset samples (pure: no Kafka client).

A lag source reads, every few seconds, each consumer group's committed offset and each
partition's log end; :class:`LagTracker` keeps a window of these :class:`OffsetSample` per
(group, topic, partition) and :func:`evaluate_partition` judges one window. The status rules
follow Burrow's (github.com/linkedin/Burrow, "Consumer Lag Evaluation Rules"), adapted to a
reader that sees committed offsets by polling rather than every commit:

========  =====================================================================================
status    when (checked in this order; the first that applies wins)
========  =====================================================================================
ERR       no offsets could be read, or the committed offset lies beyond the log end, or the log
          end moved back (topic deleted and recreated)
REWIND    the committed offset went back between two samples of the window
OK        some sample of the window has no lag (the consumer was caught up), or there is only
          one sample (no trend yet), or the offset moves and the lag does not grow
WARN      the offset moves but the lag at the end of the window is higher than at its start;
          or the offset has not moved for less than the window while the lag grows
STALL     the offset has not moved for at least the window, while a live member of the group
          owns the partition (the consumer is there but makes no progress)
STOP      the offset has not moved for at least the window and no member is known to own the
          partition, or (already with two samples) no live member of the group owns it at all
========  =====================================================================================

A group's status is the worst of its partitions' (``OK < WARN < REWIND < STALL < STOP < ERR``).

Lag in messages is ``log end - committed offset`` (``log end - log start`` for a partition the
group never committed). Lag in seconds is the age of the oldest unconsumed message: the sample's
time minus the timestamp of the message at the committed offset (0 without lag). Rates are offset
deltas over the window's time span; the time to catch up is ``lag / (consume - produce rate)``,
infinite when the consumer does not gain on the producers.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise

__all__ = [
    "GroupInfo",
    "GroupLag",
    "LagReport",
    "LagSnapshot",
    "LagTracker",
    "OffsetSample",
    "PartitionKey",
    "PartitionLag",
    "Status",
    "evaluate_partition",
    "window_of",
]


class Status(StrEnum):
    """The health of a consumer on a partition (or of a whole group)."""

    OK = "OK"
    WARN = "WARN"
    REWIND = "REWIND"
    STALL = "STALL"
    STOP = "STOP"
    ERR = "ERR"

    @property
    def severity(self) -> int:
        """0 (OK) to 5 (ERR); a group takes the status of highest severity."""
        return _SEVERITY[self]


_SEVERITY: Mapping[Status, int] = {status: rank for rank, status in enumerate(Status)}


@dataclass(frozen=True, slots=True, order=True)
class PartitionKey:
    """A consumer group's position on one partition."""

    group: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class OffsetSample:
    """One reading of a group's committed offset and the partition's log.

    Attributes:
        at: when it was read (Unix time, seconds).
        log_end: the partition's log-end offset (high watermark).
        committed: the group's committed offset (the next message it will read), or None when it
            never committed on this partition.
        log_start: the first offset still in the log.
        committed_timestamp: the timestamp (Unix time, seconds) of the message at the committed
            offset, i.e. the oldest unconsumed one, when known.
        owned: whether a live member of the group is assigned the partition (None: unknown).
    """

    at: float
    log_end: int
    committed: int | None = None
    log_start: int = 0
    committed_timestamp: float | None = None
    owned: bool | None = None

    @property
    def lag(self) -> int:
        """Messages between the committed offset (or the log start) and the log end."""
        start = self.committed if self.committed is not None else self.log_start
        return self.log_end - start


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """What the group coordinator says about a group."""

    state: str = "UNKNOWN"
    members: int = 0


@dataclass(frozen=True, slots=True)
class LagSnapshot:
    """Everything one poll of the cluster read.

    Attributes:
        at: when the poll finished (Unix time, seconds).
        offsets: a sample per (group, topic, partition) that the poll could read.
        groups: the coordinator's view of each group seen.
        errors: groups whose offsets could not be read, with the reason.
    """

    at: float
    offsets: Mapping[PartitionKey, OffsetSample]
    groups: Mapping[str, GroupInfo] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """The evaluation of one (group, topic, partition) over its window.

    Attributes:
        key: the group, topic and partition.
        sample: the latest sample (None when nothing was ever read).
        status: see the module docstring.
        reason: why, in words.
        lag_seconds: age of the oldest unconsumed message (None: unknown).
        consume_rate: committed-offset progress in messages/s over the window (None: unknown).
        produce_rate: log-end progress in messages/s over the window (None: unknown).
        eta_seconds: time to catch up at these rates; ``math.inf`` when the consumer does not
            gain on the producers, None when the rates are unknown.
    """

    key: PartitionKey
    sample: OffsetSample | None
    status: Status
    reason: str
    lag_seconds: float | None = None
    consume_rate: float | None = None
    produce_rate: float | None = None
    eta_seconds: float | None = None

    @property
    def lag(self) -> int | None:
        """Lag in messages at the latest sample."""
        return self.sample.lag if self.sample is not None else None


@dataclass(frozen=True, slots=True)
class GroupLag:
    """A group's partitions and its overall status (the worst partition's)."""

    group: str
    info: GroupInfo
    status: Status
    reason: str
    partitions: tuple[PartitionLag, ...]

    @property
    def lag(self) -> int:
        """Total lag in messages over the group's partitions."""
        return sum(max(0, p.lag or 0) for p in self.partitions)

    @property
    def lag_seconds(self) -> float | None:
        """The largest known lag in seconds (None when none is known)."""
        known = [p.lag_seconds for p in self.partitions if p.lag_seconds is not None]
        return max(known) if known else None


@dataclass(frozen=True, slots=True)
class LagReport:
    """Every group's evaluation at one moment."""

    at: float
    window_s: float
    groups: tuple[GroupLag, ...]

    def group(self, name: str) -> GroupLag | None:
        """The group called ``name``, if the report has it."""
        return next((g for g in self.groups if g.group == name), None)


def window_of(samples: Sequence[OffsetSample], window_s: float) -> list[OffsetSample]:
    """The samples within ``window_s`` of the latest one, but at least the latest two."""
    if not samples:
        return []
    start = samples[-1].at - window_s
    inside = [s for s in samples if s.at >= start]
    if len(inside) < 2 <= len(samples):
        return [samples[-2], samples[-1]]  # a deque, which does not slice
    return inside


def _rate(first: int | None, last: int | None, seconds: float) -> float | None:
    if first is None or last is None or seconds <= 0:
        return None
    return (last - first) / seconds


def _eta(lag: int, consume: float | None, produce: float | None) -> float | None:
    if lag <= 0:
        return 0.0
    if consume is None or produce is None:
        return None
    gain = consume - produce
    return lag / gain if gain > 0 else math.inf


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def evaluate_partition(
    key: PartitionKey,
    samples: Sequence[OffsetSample],
    window_s: float,
    *,
    offset_since: float | None = None,
) -> PartitionLag:
    """Judge one partition from its samples (oldest first).

    Args:
        key: the group, topic and partition the samples describe.
        samples: the readings, oldest first; only those within the window are used.
        window_s: the window's length in seconds.
        offset_since: when the latest committed offset was first seen (it may predate the
            window); None means at the window's first sample with that offset.

    Returns:
        the status, the reason and the figures of the latest sample.
    """
    window = window_of(samples, window_s)
    if not window:
        return PartitionLag(key, None, Status.ERR, "no offsets have been read")
    first, last = window[0], window[-1]
    lag = last.lag
    span = last.at - first.at
    consume = _rate(first.committed, last.committed, span)
    produce = _rate(first.log_end, last.log_end, span)
    if lag <= 0:
        lag_seconds: float | None = 0.0
    elif last.committed_timestamp is not None:
        lag_seconds = max(0.0, last.at - last.committed_timestamp)
    else:
        lag_seconds = None

    def result(status: Status, reason: str) -> PartitionLag:
        return PartitionLag(
            key, last, status, reason, lag_seconds, consume, produce, _eta(lag, consume, produce)
        )

    if last.committed is not None and last.committed > last.log_end:
        return result(
            Status.ERR,
            f"committed offset {last.committed} is beyond the log end {last.log_end} "
            "(topic recreated or truncated?)",
        )
    for before, after in pairwise(window):
        if after.log_end < before.log_end:
            return result(
                Status.ERR,
                f"log end went back from {before.log_end} to {after.log_end} (topic recreated?)",
            )
    for before, after in pairwise(window):
        if (
            before.committed is not None
            and after.committed is not None
            and after.committed < before.committed
        ):
            return result(
                Status.REWIND,
                f"committed offset went back from {before.committed} to {after.committed}",
            )
    if lag <= 0:
        return result(Status.OK, "no lag")
    if any(s.lag <= 0 for s in window):
        return result(Status.OK, f"lag {lag}, but caught up within the window")
    if len(window) < 2:
        return result(Status.OK, f"lag {lag}; first sample, no trend yet")
    grew = last.lag > first.lag
    if last.committed != first.committed:
        if grew:
            return result(
                Status.WARN, f"lag grew from {first.lag} to {lag} while the consumer commits"
            )
        return result(Status.OK, f"consuming; lag {lag} is not growing")
    since = offset_since if offset_since is not None else first.at
    still = max(0.0, last.at - min(since, first.at))
    idle = (
        f"offset {last.committed} has not moved for {_seconds(still)}"
        if last.committed is not None
        else f"nothing has been committed for {_seconds(still)}"
    )
    if still >= window_s:
        if last.owned:
            return result(
                Status.STALL, f"{idle} with lag {lag}, although a live member owns the partition"
            )
        return result(Status.STOP, f"{idle} with lag {lag}")
    if last.owned is False:
        return result(
            Status.STOP, f"no live member of the group owns the partition; {idle}, lag {lag}"
        )
    if grew:
        return result(Status.WARN, f"lag grew from {first.lag} to {lag}; {idle}")
    return result(Status.OK, f"lag {lag} is not growing; {idle}")


def _group_lag(group: str, info: GroupInfo, partitions: list[PartitionLag]) -> GroupLag:
    partitions.sort(key=lambda p: p.key)
    if not partitions:
        return GroupLag(group, info, Status.ERR, "no partitions", ())
    worst = max(partitions, key=lambda p: p.status.severity)
    same = sum(1 for p in partitions if p.status is worst.status)
    where = f"{worst.key.topic}[{worst.key.partition}]"
    if worst.status is Status.OK:
        reason = f"{len(partitions)} partition(s) OK"
    else:
        others = f" (+{same - 1} more)" if same > 1 else ""
        reason = f"{where}{others}: {worst.reason}"
    return GroupLag(group, info, worst.status, reason, tuple(partitions))


class LagTracker:
    """Keeps a sliding window of samples per (group, topic, partition) and evaluates them.

    Not thread-safe: feed it from one thread and hand the immutable :class:`LagReport` around.

    Args:
        window_s: the evaluation window in seconds (see the module docstring).
        max_samples: at most this many samples are kept per partition.

    Raises:
        ValueError: ``window_s`` is not positive.
    """

    def __init__(self, window_s: float, *, max_samples: int = 512) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.window_s = window_s
        self._max = max_samples
        self._series: dict[PartitionKey, deque[OffsetSample]] = {}
        self._since: dict[PartitionKey, float] = {}
        self._groups: dict[str, GroupInfo] = {}
        self._errors: dict[str, str] = {}
        self._failure: str | None = None
        self._at = 0.0

    def observe(self, snapshot: LagSnapshot) -> None:
        """Add one poll's samples; partitions the poll no longer saw are forgotten.

        A group named in ``snapshot.errors`` keeps its partitions, which then report ERR.
        """
        self._at = snapshot.at
        self._failure = None
        self._errors = dict(snapshot.errors)
        self._groups = dict(snapshot.groups)
        for key in [k for k in self._series if k not in snapshot.offsets]:
            if key.group not in self._errors:
                del self._series[key]
                self._since.pop(key, None)
        for key, sample in snapshot.offsets.items():
            series = self._series.setdefault(key, deque(maxlen=self._max))
            if not series or series[-1].committed != sample.committed:
                self._since[key] = sample.at
            series.append(sample)
            # keep the window plus one older sample: the window must not fall below two
            while len(series) > 2 and series[1].at < sample.at - self.window_s:
                series.popleft()

    def observe_failure(self, at: float, error: str) -> None:
        """Record that a whole poll failed: every known partition reports ERR."""
        self._at = at
        self._failure = error

    def report(self) -> LagReport:
        """Evaluate every partition and group."""
        by_group: dict[str, list[PartitionLag]] = {g: [] for g in self._errors}
        for key, series in self._series.items():
            error = self._failure or self._errors.get(key.group)
            evaluated = evaluate_partition(
                key, series, self.window_s, offset_since=self._since.get(key)
            )
            if error is not None:
                evaluated = PartitionLag(key, evaluated.sample, Status.ERR, error)
            by_group.setdefault(key.group, []).append(evaluated)
        groups = []
        for group in sorted(by_group):
            info = self._groups.get(group, GroupInfo())
            if not by_group[group] and group in self._errors:
                groups.append(GroupLag(group, info, Status.ERR, self._errors[group], ()))
            else:
                groups.append(_group_lag(group, info, by_group[group]))
        return LagReport(self._at, self.window_s, tuple(groups))
