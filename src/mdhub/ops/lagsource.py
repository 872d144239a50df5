"""Reads consumer-group offsets of the hub's topics from Kafka (confluent-kafka's admin API).

Every consumer group that has committed offsets on (or is assigned) a topic of the hub's
namespace (``<namespace>.*``) is covered: the hub's own worker and projector and any external
system subscribed to golden-record topics. One :meth:`KafkaLagSource.sample` call reads

- the groups (``list_consumer_groups``), their state and member assignments
  (``describe_consumer_groups``) and, of the groups described without error, their committed
  offsets (``list_consumer_group_offsets``, one request per group, all in flight at once);
- the log start and log end of every partition involved (``list_offsets``, read-uncommitted,
  as Kafka's consumer-group tool reports them);
- for lag in seconds, the timestamp of the message at each lagging committed offset, fetched
  with an assigned consumer that commits nothing. Timestamps are cached per
  (topic, partition, offset), so a poll only fetches for offsets that moved.

Kafka errors become :class:`~mdhub.errors.KafkaUnavailableError`; a single group whose offsets
cannot be read is reported in :attr:`LagSnapshot.errors` instead.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future
from typing import Any

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from mdhub.errors import KafkaUnavailableError
from mdhub.kafka.config import admin_config, consumer_config
from mdhub.kafka.lag import log_offsets
from mdhub.kafka.reading import consume_ready
from mdhub.naming import Stage, group_name
from mdhub.ops.lag import GroupInfo, LagSnapshot, OffsetSample, PartitionKey
from mdhub.settings import KafkaSettings

__all__ = ["KafkaLagSource"]

_log = logging.getLogger(__name__)

_TopicPart = tuple[str, int]
#: A lookup that reached the log end without a message (only transaction markers after the
#: committed offset) is retried after this long; one that ran out of time is retried next poll.
_MISS_TTL_S = 30.0


def _quiet(conf: dict[str, Any], kafka: KafkaSettings) -> dict[str, Any]:
    """Keep librdkafka's own connection errors off stderr: failures surface as exceptions
    (``KafkaUnavailableError``) with the reason, which the CLI and the sampler report once."""
    if "log_level" not in kafka.extra:
        conf = {**conf, "log_level": 2}
    return conf


def _is_state_topic(topic: str) -> bool:
    """The worker's state changelog: assigned to it for recovery, read but never committed."""
    parts = topic.split(".")
    return len(parts) >= 4 and parts[-2] == Stage.STATE.value


class KafkaLagSource:
    """Polls the offsets of the groups that read ``<namespace>.*`` topics.

    Not thread-safe for :meth:`sample` (one sampling thread); :meth:`ping` may be called from any
    thread. Close it (or use it as a context manager) to release its Kafka clients.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        namespace: str,
        *,
        groups: Collection[str] = (),
        timestamps: bool = True,
        timestamp_budget_s: float = 3.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Prepare the clients (nothing is sent until the first call).

        Args:
            kafka: how to reach Kafka.
            namespace: topics named ``<namespace>.*`` are the hub's.
            groups: only these groups (default: every group that reads hub topics).
            timestamps: fetch the message at each lagging committed offset for lag in seconds.
            timestamp_budget_s: the longest one poll spends fetching those messages.
            clock: the wall clock (Unix seconds), for the samples' times.
        """
        self._kafka = kafka
        self._prefix = namespace + "."
        self._namespace = namespace
        self._wanted = sorted(set(groups))
        self._with_timestamps = timestamps
        self._budget = timestamp_budget_s
        self._clock = clock
        self._timeout = kafka.request_timeout_s
        self._admin = AdminClient(_quiet(admin_config(kafka), kafka))
        self._probe: Consumer | None = None
        # (topic, partition, offset) -> (timestamp or None when no message was found, when read)
        self._ts_cache: dict[tuple[str, int, int], tuple[float | None, float]] = {}

    def __enter__(self) -> KafkaLagSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the consumer used for timestamp lookups."""
        if self._probe is not None:
            probe, self._probe = self._probe, None
            # already closed, or the broker is gone: nothing to release then
            with contextlib.suppress(KafkaException, RuntimeError):
                probe.close()

    def _unavailable(self, what: str, exc: BaseException) -> KafkaUnavailableError:
        return KafkaUnavailableError(
            f"Kafka at {self._kafka.bootstrap_servers}: cannot {what} ({exc}); start it with "
            "`mdhub stack up` or set MDHUB_KAFKA__BOOTSTRAP_SERVERS"
        )

    def ping(self, timeout_s: float | None = None) -> None:
        """Return when a broker answers a metadata request.

        Raises:
            KafkaUnavailableError: no broker answered within the timeout.
        """
        try:
            meta = self._admin.list_topics(timeout=timeout_s or self._timeout)
        except KafkaException as exc:
            raise self._unavailable("read the cluster metadata", exc) from exc
        if not meta.brokers:
            raise KafkaUnavailableError(
                f"Kafka at {self._kafka.bootstrap_servers}: the metadata names no broker"
            )

    def sample(self) -> LagSnapshot:
        """Read the committed offsets, log ends and (when lagging) oldest-message timestamps.

        Raises:
            KafkaUnavailableError: the groups or the log offsets cannot be read.
        """
        try:
            return self._sample()
        except KafkaException as exc:
            raise self._unavailable("read consumer-group offsets", exc) from exc

    def _list_groups(self) -> list[str]:
        if self._wanted:
            return list(self._wanted)
        listed = self._admin.list_consumer_groups(request_timeout=self._timeout).result()
        errors = list(listed.errors or [])
        if errors and not listed.valid:
            # every broker failed to answer: the cluster is not there
            raise KafkaUnavailableError(
                f"Kafka at {self._kafka.bootstrap_servers}: cannot list consumer groups "
                f"({errors[0]}); start it with `mdhub stack up` or set "
                "MDHUB_KAFKA__BOOTSTRAP_SERVERS"
            )
        for error in errors:
            _log.warning("listing consumer groups (the list may be incomplete): %s", error)
        return sorted(g.group_id for g in listed.valid or [] if g.group_id)

    def _sample(self) -> LagSnapshot:
        self.ping()
        groups = self._list_groups()
        errors: dict[str, str] = {}
        committed: dict[str, dict[_TopicPart, int]] = {}
        infos: dict[str, GroupInfo] = {}
        owners: dict[str, set[_TopicPart]] = {}
        if groups:
            # Offsets only of groups whose coordinator has just answered: librdkafka's admin
            # request for them crashes the process when the coordinator answers NOT_COORDINATOR
            # (while a starting broker loads its offsets; see mdhub.kafka.offsets), and a group
            # described without error has a coordinator that is up.
            described = self._admin.describe_consumer_groups(groups, request_timeout=self._timeout)
            ready: list[str] = []
            for g, future in described.items():
                try:
                    future.result()
                except KafkaException as exc:
                    errors[g] = f"cannot describe the group (a broker starting?): {exc.args[0]}"
                    continue
                infos[g], owners[g] = self._describe(g, future)
                ready.append(g)
            offset_futures = {
                g: self._admin.list_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions(g)], request_timeout=self._timeout
                )[g]
                for g in ready
            }
            for g, future in offset_futures.items():
                try:
                    result = future.result()
                except KafkaException as exc:
                    errors[g] = f"cannot read the group's offsets: {exc.args[0]}"
                    continue
                committed[g] = {
                    (tp.topic, tp.partition): tp.offset
                    for tp in result.topic_partitions or []
                    if tp.topic.startswith(self._prefix) and tp.offset >= 0 and tp.error is None
                }
        keys: dict[PartitionKey, int | None] = {}
        for g in groups:
            for (topic, partition), offset in committed.get(g, {}).items():
                keys[PartitionKey(g, topic, partition)] = offset
            for topic, partition in owners.get(g, set()):
                keys.setdefault(PartitionKey(g, topic, partition), None)
        parts = sorted({(k.topic, k.partition) for k in keys})
        starts = self._offsets(parts, latest=False)
        ends = self._offsets(parts, latest=True)
        at = self._clock()
        offsets: dict[PartitionKey, OffsetSample] = {}
        for key, position in sorted(keys.items()):
            tp = (key.topic, key.partition)
            if tp not in ends:
                continue  # the topic is gone; its old commits linger until they expire
            group_owners = owners.get(key.group)
            offsets[key] = OffsetSample(
                at=at,
                log_end=ends[tp],
                committed=position,
                log_start=starts.get(tp, 0),
                owned=None if group_owners is None else tp in group_owners,
            )
        if self._with_timestamps:
            offsets = self._with_oldest_timestamps(offsets)
        seen = {k.group for k in offsets} | set(errors)
        return LagSnapshot(
            at=at,
            offsets=offsets,
            groups={g: infos[g] for g in infos if g in seen or g in self._wanted},
            errors=errors,
        )

    def _describe(self, group: str, future: Future[Any]) -> tuple[GroupInfo, set[_TopicPart]]:
        try:
            desc = future.result()
        except KafkaException as exc:
            _log.debug("describing group %s: %s", group, exc)
            return GroupInfo(), set()
        owned = {
            (tp.topic, tp.partition)
            for member in desc.members or []
            if member.assignment is not None
            for tp in member.assignment.topic_partitions or []
            if tp.topic.startswith(self._prefix) and not _is_state_topic(tp.topic)
        }
        state = getattr(desc.state, "name", str(desc.state))
        return GroupInfo(state=state, members=len(desc.members or [])), owned

    def _offsets(self, parts: list[_TopicPart], *, latest: bool) -> dict[_TopicPart, int]:
        result = log_offsets(self._admin, parts, latest=latest, timeout=self._timeout)
        if result.failures and not result.found:
            raise KafkaUnavailableError(
                f"Kafka at {self._kafka.bootstrap_servers}: cannot read log offsets: "
                + "; ".join(result.failures[:3])
            )
        for failure in result.failures:
            _log.debug("log offsets of %s", failure)
        return result.found

    # -- lag in seconds: the timestamp of the oldest unconsumed message -------------------------

    def _with_oldest_timestamps(
        self, offsets: dict[PartitionKey, OffsetSample]
    ) -> dict[PartitionKey, OffsetSample]:
        now = time.monotonic()
        wanted = {
            (k.topic, k.partition, s.committed if s.committed is not None else s.log_start)
            for k, s in offsets.items()
            if s.lag > 0
        }
        cache = self._ts_cache
        for entry in list(cache):
            stamp, read_at = cache[entry]
            if entry not in wanted or (stamp is None and now - read_at > _MISS_TTL_S):
                del cache[entry]
        pending = sorted(entry for entry in wanted if entry not in cache)
        deadline = now + self._budget
        # a consumer holds a partition once, so several offsets of one partition take rounds
        while pending and time.monotonic() < deadline:
            todo: dict[_TopicPart, int] = {}
            later = []
            for topic, partition, offset in pending:
                if (topic, partition) in todo:
                    later.append((topic, partition, offset))
                else:
                    todo[(topic, partition)] = offset
            found = self._fetch_timestamps(todo, deadline)
            for tp, offset in todo.items():
                if tp in found:
                    cache[(*tp, offset)] = (found[tp], now)
            pending = later
        out = {}
        for key, s in offsets.items():
            if s.lag <= 0:
                out[key] = s
                continue
            position = s.committed if s.committed is not None else s.log_start
            stamp = cache.get((key.topic, key.partition, position), (None, 0.0))[0]
            out[key] = OffsetSample(
                at=s.at,
                log_end=s.log_end,
                committed=s.committed,
                log_start=s.log_start,
                committed_timestamp=stamp,
                owned=s.owned,
            )
        return out

    def _consumer(self) -> Consumer:
        if self._probe is None:
            conf = consumer_config(
                self._kafka,
                group_name(self._namespace, "lag-probe"),
                **{
                    # reads single messages at given offsets; never joins the group or commits
                    "enable.auto.commit": False,
                    "isolation.level": "read_uncommitted",
                    "auto.offset.reset": "earliest",
                    "enable.partition.eof": True,
                    "fetch.wait.max.ms": 50,
                    "max.partition.fetch.bytes": 65536,
                    "queued.max.messages.kbytes": 4096,
                },
            )
            self._probe = Consumer(_quiet(conf, self._kafka))
        return self._probe

    def _fetch_timestamps(
        self, todo: dict[_TopicPart, int], deadline: float
    ) -> dict[_TopicPart, float | None]:
        """The timestamp of the first message at or after each offset, for the partitions done
        before the deadline (None: the log end came first, or the message has no timestamp)."""
        consumer = self._consumer()
        found: dict[_TopicPart, float | None] = {}
        assigned = [TopicPartition(t, p, offset) for (t, p), offset in todo.items()]
        consumer.assign(assigned)
        # librdkafka keeps a partition's pause across assignments: clear the previous round's
        consumer.resume(assigned)
        try:
            while len(found) < len(todo):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    _log.debug("no message found in time at %d offset(s)", len(todo) - len(found))
                    break
                for msg in consume_ready(consumer, 100, min(0.2, remaining)):
                    tp = (str(msg.topic()), int(msg.partition() or 0))
                    if tp in found or tp not in todo:
                        continue
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            found[tp] = None  # nothing but markers up to the log end
                        continue
                    kind, millis = msg.timestamp()
                    found[tp] = None if kind == TIMESTAMP_NOT_AVAILABLE else millis / 1000.0
                    consumer.pause([TopicPartition(*tp)])
        finally:
            consumer.unassign()
        return found
