"""Consumer-group lag: committed offsets (read with a consumer of the group, see
:mod:`mdhub.kafka.offsets`) against the log end (admin API)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from confluent_kafka import IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from mdhub.errors import KafkaUnavailableError, MdhubError
from mdhub.kafka.admin import shared_admin
from mdhub.kafka.config import admin_config
from mdhub.kafka.offsets import committed_offsets
from mdhub.settings import KafkaSettings

__all__ = ["LogOffsets", "check_worker", "group_assignment", "group_lag", "log_offsets"]


def group_lag(
    kafka: KafkaSettings, group: str, topics: Sequence[str]
) -> dict[tuple[str, int], int]:
    """Return ``{(topic, partition): lag}`` of ``group`` on ``topics``.

    A partition the group never committed counts its whole log (from the low watermark) as lag.
    The log offsets come from the process's shared admin client (see
    :func:`~mdhub.kafka.admin.shared_admin`), the committed ones from the group's offset reader
    (:func:`~mdhub.kafka.offsets.committed_offsets`): callers poll this.

    Raises:
        KafkaUnavailableError: Kafka cannot be reached.
    """
    admin = shared_admin(admin_config(kafka))
    timeout = kafka.request_timeout_s
    try:
        meta = admin.list_topics(timeout=timeout)
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            if topic in meta.topics
            for p in meta.topics[topic].partitions
        ]
        if not partitions:
            return {}
        keys = [(tp.topic, tp.partition) for tp in partitions]
        committed = committed_offsets(kafka, group, keys, timeout)
        ends = log_offsets(admin, keys, latest=True, timeout=timeout)
        fresh = [key for key in keys if committed.get(key, -1) < 0]
        starts = log_offsets(admin, fresh, latest=False, timeout=timeout)
        if ends.failures or starts.failures:
            failures = ends.failures + starts.failures
            raise KafkaUnavailableError(
                f"Kafka at {kafka.bootstrap_servers}: cannot read the log offsets of group "
                f"{group}: " + "; ".join(failures[:3])
            )
        lag: dict[tuple[str, int], int] = {}
        for key in keys:
            offset = committed.get(key, -1)
            lag[key] = ends.found[key] - (offset if offset >= 0 else starts.found[key])
        return lag
    except KafkaException as exc:
        raise KafkaUnavailableError(
            f"Kafka at {kafka.bootstrap_servers}: cannot read group {group}: {exc}"
        ) from exc


@dataclass(frozen=True, slots=True)
class LogOffsets:
    """Offsets of partitions asked of the admin API, with the partitions it could not answer."""

    found: dict[tuple[str, int], int]
    failures: tuple[str, ...]  # "<topic>[<partition>]: <error>"


def log_offsets(
    admin: AdminClient, partitions: Iterable[tuple[str, int]], *, latest: bool, timeout: float
) -> LogOffsets:
    """The log-end (``latest``) or low-watermark offsets of ``partitions`` (read uncommitted).

    Raises:
        KafkaException: the request as a whole failed.
    """
    wanted = [TopicPartition(topic, partition) for topic, partition in partitions]
    if not wanted:
        return LogOffsets({}, ())
    spec = OffsetSpec.latest() if latest else OffsetSpec.earliest()  # type: ignore[no-untyped-call]
    futures = admin.list_offsets(
        {tp: spec for tp in wanted},
        isolation_level=IsolationLevel.READ_UNCOMMITTED,
        request_timeout=timeout,
    )
    found: dict[tuple[str, int], int] = {}
    failures: list[str] = []
    for tp, future in futures.items():
        try:
            found[(tp.topic, tp.partition)] = int(future.result().offset)
        except KafkaException as exc:
            failures.append(f"{tp.topic}[{tp.partition}]: {exc.args[0]}")
    return LogOffsets(found, tuple(failures))


def group_assignment(
    kafka: KafkaSettings, group: str, topics: Sequence[str] | None
) -> tuple[str, int, int]:
    """Return ``(state, members, partitions assigned)`` of a consumer group (of ``topics``, if given).

    Raises:
        KafkaUnavailableError: Kafka cannot be reached.
    """
    admin = shared_admin(admin_config(kafka))
    try:
        futures = admin.describe_consumer_groups([group], request_timeout=kafka.request_timeout_s)
        description = futures[group].result()
    except KafkaException as exc:
        raise KafkaUnavailableError(
            f"Kafka at {kafka.bootstrap_servers}: cannot describe group {group}: {exc}"
        ) from exc
    wanted = set(topics) if topics is not None else None
    assigned = sum(
        1
        for member in description.members
        if member.assignment is not None
        for tp in member.assignment.topic_partitions
        if wanted is None or tp.topic in wanted
    )
    state = getattr(description.state, "name", str(description.state))
    return state, len(description.members), assigned


def check_worker(kafka: KafkaSettings, namespace: str) -> None:
    """Return when at least one stream worker has source partitions assigned.

    Raises:
        MdhubError: none has (the message says what the worker group looks like).
        KafkaUnavailableError: Kafka cannot be reached.
    """
    group = f"{namespace}-worker"
    state, members, assigned = group_assignment(kafka, group, None)
    if assigned == 0:
        raise MdhubError(
            f"no stream worker has partitions assigned (group {group} is {state} with "
            f"{members} member(s)); start one with `mdhub worker`"
        )
