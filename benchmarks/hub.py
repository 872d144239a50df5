"""The hub end to end: publish to the source topic, wait for the last golden version in Redis.

The path is: source topic -> the worker's router thread (group ``<ns>-router-customer``), which
forwards every change in one order to the resolve topic -> the worker's agent (group
``<ns>-worker``), which resolves identity and writes the golden and changes topics -> the projector
(group ``<ns>-projector``) -> Redis. The hub has caught up when the three groups have committed
all of their inputs, checked in that order.

Completion is read from the projector's claim-order counter (``<ns>:customer:meta:claimseq``): the
version-guarded Lua script in :mod:`mdhub.cache.views` increments it exactly once per golden version
it applies (refused replays and duplicates do not), so the counter reaching its start value plus
the number of versions the dataset must produce means every version of every key is in Redis. One
GET every 50 ms costs Redis nothing. Afterwards, untimed, every key's stored version, the topics'
message counts and the three consumer groups' committed lag are checked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis
from confluent_kafka import Producer

from mdhub.kafka.config import producer_config
from mdhub.naming import Stage, group_name, redis_key, topic_name
from mdhub.settings import Settings

from baseline import produce_all
from dataset import ENTITY, Dataset
from environment import HubProcess
from topics import committed_lag, message_count, wait_for_lag_zero

__all__ = [
    "HubResult",
    "Projection",
    "Verification",
    "groups_caught_up",
    "lag_checks",
    "run_hub",
    "verify",
    "wait_until_projected",
]

POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class HubResult:
    """What the end-to-end run measured.

    Attributes:
        records: changes published.
        publish_s: from the first publish until Kafka acknowledged the last one.
        total_s: from the first publish until the last golden version was in Redis.
        expected_versions: golden versions the changes must produce.
        projected_versions: golden versions that reached Redis.
    """

    records: int
    publish_s: float
    total_s: float
    expected_versions: int
    projected_versions: int

    @property
    def complete(self) -> bool:
        """Every expected golden version reached Redis."""
        return self.projected_versions >= self.expected_versions

    @property
    def rate(self) -> float:
        """Changes per second, end to end."""
        return self.records / self.total_s


@dataclass(frozen=True, slots=True)
class Verification:
    """The untimed checks after a run.

    Attributes:
        keys: golden records checked.
        wrong_versions: of those, how many are missing or not at their final version.
        golden_messages: messages on the golden topic (expected: one per version).
        changes_messages: messages on the changes topic (expected: one per version).
        rejected_messages: messages on the rejected topic (expected: none).
        review_messages: potential matches on the review topic (expected: none; the datasets hold
            no duplicates, see :mod:`dataset`).
        expected_versions: versions the published changes must have produced.
        router_lag: source messages the router group has not committed.
        worker_lag: resolve-topic messages the worker group has not committed.
        projector_lag: golden messages the projector group has not committed.
    """

    keys: int
    wrong_versions: int
    golden_messages: int
    changes_messages: int
    rejected_messages: int
    review_messages: int
    expected_versions: int
    router_lag: int
    worker_lag: int
    projector_lag: int

    @property
    def ok(self) -> bool:
        """Everything processed exactly as expected (duplicates would show as extra messages; a
        merge as a wrong version)."""
        return (
            self.wrong_versions == 0
            and self.rejected_messages == 0
            and self.review_messages == 0
            and self.router_lag == 0
            and self.worker_lag == 0
            and self.projector_lag == 0
            and self.golden_messages >= self.expected_versions
            and self.changes_messages >= self.expected_versions
        )


def claimseq_key(settings: Settings) -> str:
    """The Redis counter incremented once per golden version applied."""
    return redis_key(settings.namespace, ENTITY, "meta", "claimseq")


def read_claimseq(client: redis.Redis, settings: Settings) -> int:
    """The counter's value (0 before the first view)."""
    raw = client.get(claimseq_key(settings))
    return int(raw) if raw is not None else 0


def golden_versions(
    client: redis.Redis, settings: Settings, golden_ids: Sequence[str]
) -> list[int | None]:
    """The stored version of each golden record (``None`` when absent), pipelined."""
    out: list[int | None] = []
    for start in range(0, len(golden_ids), 2000):
        pipe = client.pipeline(transaction=False)
        for gid in golden_ids[start : start + 2000]:
            pipe.hget(redis_key(settings.namespace, ENTITY, "golden", gid), "version")
        out.extend(None if raw is None else int(raw) for raw in pipe.execute())
    return out


@dataclass(frozen=True, slots=True)
class Projection:
    """How waiting for the golden versions ended.

    Attributes:
        done_at: ``perf_counter()`` when the last version was seen in Redis.
        projected: versions projected since the wait began.
        complete: every expected version arrived; otherwise the hub settled without the rest
            (every consumer group had committed everything and nothing moved for a while).
    """

    done_at: float
    projected: int
    complete: bool


def wait_until_projected(
    client: redis.Redis,
    settings: Settings,
    target: int,
    processes: Sequence[HubProcess],
    stall_timeout_s: float,
    on_progress: Callable[[int], None] | None = None,
    *,
    start: int = 0,
    settled: Callable[[], bool] | None = None,
    quiet_s: float = 10.0,
) -> Projection:
    """Poll the claim counter until it reaches ``target``.

    With ``settled``, a counter that stopped short for ``quiet_s`` while ``settled()`` is true ends
    the wait as incomplete, dated at the last version seen: the hub will never produce the rest.

    Raises:
        RuntimeError: a hub process died, or the counter did not move for ``stall_timeout_s``.
    """
    last, last_change, last_settle_check = -1, time.perf_counter(), 0.0
    while True:
        value = read_claimseq(client, settings)
        now = time.perf_counter()
        if value >= target:
            return Projection(now, value - start, True)
        if value != last:
            last, last_change = value, now
            if on_progress is not None:
                on_progress(value - start)
        else:
            quiet = now - last_change
            if settled is not None and quiet >= quiet_s and now - last_settle_check >= 2:
                last_settle_check = now
                if settled():
                    return Projection(last_change, value - start, False)
            if quiet > stall_timeout_s:
                raise RuntimeError(
                    f"no golden version projected for {stall_timeout_s:.0f}s "
                    f"({value - start} of {target - start} done)"
                )
        for proc in processes:
            proc.check_alive()
        time.sleep(POLL_S)


def lag_checks(settings: Settings) -> list[tuple[str, str, str]]:
    """``(name, consumer group, input topic)`` of each stage of the hub, in pipeline order."""
    ns = settings.namespace
    return [
        ("router", group_name(ns, f"router-{ENTITY}"), topic_name(ns, ENTITY, Stage.SOURCE)),
        ("worker", group_name(ns, "worker"), topic_name(ns, ENTITY, Stage.RESOLVE)),
        ("projector", group_name(ns, "projector"), topic_name(ns, ENTITY, Stage.GOLDEN)),
    ]


def groups_caught_up(settings: Settings) -> bool:
    """Whether the router, the worker and the projector have committed all of their inputs.

    Asked in pipeline order, so a stage is asked after everything its predecessor committed had
    been forwarded to it: all zero means nothing is in flight anywhere.
    """
    return all(
        committed_lag(settings.kafka, group, topic) == 0 for _, group, topic in lag_checks(settings)
    )


def run_hub(
    settings: Settings,
    client: redis.Redis,
    dataset: Dataset,
    processes: Sequence[HubProcess],
    stall_timeout_s: float,
    on_progress: Callable[[str, int], None] | None = None,
) -> HubResult:
    """Publish the dataset to the source topic and time until every golden version is projected.

    The worker and projector must be running and warmed up. Should the hub settle with versions
    missing (records it consumed but never turned into golden versions), the time runs to the last
    version that did arrive and the result says how many are missing.
    """
    source = topic_name(settings.namespace, ENTITY, Stage.SOURCE)
    base = read_claimseq(client, settings)
    target = base + dataset.expected_versions
    producer = Producer(producer_config(settings.kafka))
    started = time.perf_counter()
    produce_all(
        producer,
        source,
        dataset.messages,
        (lambda n: on_progress("publish", n)) if on_progress is not None else None,
    )
    if producer.flush(120):
        raise RuntimeError("the source records were not acknowledged within 120s")
    published = time.perf_counter()
    if on_progress is not None:
        on_progress("publish", len(dataset.messages))
    end = wait_until_projected(
        client,
        settings,
        target,
        processes,
        stall_timeout_s,
        (lambda n: on_progress("projected", n)) if on_progress is not None else None,
        start=base,
        settled=lambda: groups_caught_up(settings),
    )
    if on_progress is not None:
        on_progress("projected", end.projected)
    return HubResult(
        records=len(dataset.messages),
        publish_s=published - started,
        total_s=end.done_at - started,
        expected_versions=dataset.expected_versions,
        projected_versions=end.projected,
    )


def verify(
    settings: Settings, client: redis.Redis, datasets: Sequence[Dataset], lag_timeout_s: float = 30
) -> Verification:
    """Check every key's final version, the topics' counts and the groups' committed lag (waited
    for in pipeline order: the commits are periodic)."""
    finals: dict[str, int] = {}
    for data in datasets:
        finals.update(data.final_versions)
    ids = list(finals)
    stored = golden_versions(client, settings, ids)
    wrong = sum(1 for gid, version in zip(ids, stored, strict=True) if version != finals[gid])
    ns, kafka = settings.namespace, settings.kafka
    lags = {
        name: wait_for_lag_zero(kafka, group, topic, lag_timeout_s)
        for name, group, topic in lag_checks(settings)
    }
    return Verification(
        keys=len(ids),
        wrong_versions=wrong,
        golden_messages=message_count(kafka, topic_name(ns, ENTITY, Stage.GOLDEN)),
        changes_messages=message_count(kafka, topic_name(ns, ENTITY, Stage.CHANGES)),
        rejected_messages=message_count(kafka, topic_name(ns, ENTITY, Stage.REJECTED)),
        review_messages=message_count(kafka, topic_name(ns, ENTITY, Stage.REVIEW)),
        expected_versions=sum(d.expected_versions for d in datasets),
        router_lag=lags["router"],
        worker_lag=lags["worker"],
        projector_lag=lags["projector"],
    )
