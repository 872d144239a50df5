"""Topic administration: create the registry's topics and report drift."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # type: ignore[attr-defined]

from mdhub.errors import KafkaUnavailableError
from mdhub.kafka.config import admin_config
from mdhub.settings import KafkaSettings
from mdhub.topology import TopicSpec

__all__ = [
    "TopicReport",
    "ensure_topics",
    "existing_topics",
    "release_admins",
    "shared_admin",
    "wait_for_kafka",
]


@dataclass(frozen=True, slots=True)
class TopicReport:
    """What :func:`ensure_topics` found or did for one topic."""

    name: str
    action: str  # "created", "exists", "drift"
    drift: tuple[str, ...] = field(default_factory=tuple)


_ADMINS: dict[tuple[tuple[str, str], ...], AdminClient] = {}
_ADMINS_LOCK = threading.Lock()


def shared_admin(conf: Mapping[str, Any]) -> AdminClient:
    """The process's admin client for ``conf``, made on first use and kept.

    Callers poll Kafka (lag, topics, readiness), often while it is busy or starting. A client
    made and destroyed per call, right after a request timed out, crashes librdkafka 2.16 in its
    own threads (an assertion in ``rd_kafka_enq_once_del_source_return``, or a segfault in
    ``rdk:main``; reproduced with metadata and group-offset requests timing out). One long-lived
    client per configuration avoids it, and keeps its connection between calls. librdkafka
    clients are thread-safe. (A segfault in ``rdk:main`` also comes from the committed-offsets
    request on NOT_COORDINATOR, with any admin client: see :mod:`mdhub.kafka.offsets`, which
    reads them with a consumer instead; some of the segfaults seen before may have been that.)
    """
    key = tuple(sorted((str(k), repr(v)) for k, v in conf.items()))
    with _ADMINS_LOCK:
        admin = _ADMINS.get(key)
        if admin is None:
            admin = _ADMINS[key] = AdminClient(dict(conf))
        return admin


def release_admins() -> None:
    """Let go of the process's admin clients (librdkafka destroys one when its last reference
    goes): for a process that goes on after Kafka stopped, and calls them no more."""
    with _ADMINS_LOCK:
        _ADMINS.clear()


def _admin(kafka: KafkaSettings) -> AdminClient:
    return shared_admin(admin_config(kafka))


def _unavailable(kafka: KafkaSettings, exc: BaseException) -> KafkaUnavailableError:
    return KafkaUnavailableError(
        f"Kafka at {kafka.bootstrap_servers} is not reachable ({exc}); start it with "
        "`mdhub stack up` or set MDHUB_KAFKA__BOOTSTRAP_SERVERS"
    )


def existing_topics(kafka: KafkaSettings, timeout: float | None = None) -> dict[str, int]:
    """Return ``{topic: partition count}`` of the cluster.

    Raises:
        KafkaUnavailableError: no broker answered within the timeout.
    """
    try:
        meta = _admin(kafka).list_topics(timeout=timeout or kafka.request_timeout_s)
    except KafkaException as exc:
        raise _unavailable(kafka, exc) from exc
    return {name: len(t.partitions) for name, t in meta.topics.items() if t.error is None}


def wait_for_kafka(kafka: KafkaSettings, timeout: float) -> None:
    """Return once a broker answers a metadata request, or raise :class:`KafkaUnavailableError`."""
    existing_topics(kafka, timeout=timeout)


def _drift(spec: TopicSpec, partitions: int, configs: dict[str, str]) -> tuple[str, ...]:
    drift = []
    if partitions != spec.partitions:
        drift.append(f"partitions {partitions} (expected {spec.partitions})")
    for key, want in spec.config.items():
        have = configs.get(key)
        if have != want:
            drift.append(f"{key}={have} (expected {want})")
    return tuple(drift)


def ensure_topics(kafka: KafkaSettings, specs: Sequence[TopicSpec]) -> list[TopicReport]:
    """Create missing topics with their configs; report existing ones whose configs drifted.

    Existing topics are never altered: drift is reported for an operator to decide.

    Raises:
        KafkaUnavailableError: Kafka cannot be reached.
    """
    admin = _admin(kafka)
    existing = existing_topics(kafka)
    missing = [s for s in specs if s.name not in existing]
    reports: dict[str, TopicReport] = {}
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config))
                for s in missing
            ],
            request_timeout=kafka.request_timeout_s,
        )
        for name, fut in futures.items():
            try:
                fut.result()
                reports[name] = TopicReport(name, "created")
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue  # created meanwhile (or metadata was stale): checked for drift below
                raise _unavailable(kafka, exc) from exc
    present = [s for s in specs if s.name not in reports]
    # A topic created a moment ago may not be in the broker's metadata yet (KRaft propagates it):
    # wait until every topic is, so a worker started next finds them all.
    deadline = time.monotonic() + kafka.request_timeout_s
    while any(s.name not in existing for s in specs) and time.monotonic() < deadline:
        time.sleep(0.2)
        existing = existing_topics(kafka)
    if present:
        resources = [ConfigResource(ConfigResource.Type.TOPIC, s.name) for s in present]
        try:
            described = admin.describe_configs(resources, request_timeout=kafka.request_timeout_s)
            configs = {
                res.name: {k: v.value for k, v in fut.result().items()}
                for res, fut in described.items()
            }
        except KafkaException as exc:
            raise _unavailable(kafka, exc) from exc
        for s in present:
            drift = _drift(s, existing.get(s.name, 0), configs.get(s.name, {}))
            reports[s.name] = TopicReport(s.name, "drift" if drift else "exists", drift)
    return [reports[s.name] for s in specs]
