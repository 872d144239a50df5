"""Views gone from Redis are refilled from offset 0: by every projector of the group for its own
partitions, even when the loss is seen before a projector has its partitions."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from mdhub.cache.projector import Projector
from mdhub.modelfile import load_model
from mdhub.serde.catalog import SchemaCatalog
from mdhub.settings import Settings
from mdhub.testing import InMemoryGoldenCache

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = "t.customer.golden.v1"
COMMITTED = -1001  # confluent-kafka's OFFSET_STORED: resume at the group's committed offset


class Consumer:
    """The part of confluent-kafka's consumer the projector's refill uses."""

    def __init__(self, *, commit_fails: bool = False) -> None:
        self.assigned: list[TopicPartition] = []
        self.seeks: list[tuple[str, int, int]] = []
        self.stored: dict[tuple[str, int], int] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self.commit_fails = commit_fails

    def assignment(self) -> list[TopicPartition]:
        return list(self.assigned)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = list(partitions)

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def store_offsets(self, *, offsets: list[TopicPartition]) -> None:
        self.stored.update({(tp.topic, tp.partition): tp.offset for tp in offsets})

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert not asynchronous, "the start must be committed before the partitions are marked"
        if self.commit_fails:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        self.committed.update({(tp.topic, tp.partition): tp.offset for tp in offsets})


def projector(cache: InMemoryGoldenCache) -> Projector:
    settings = Settings(namespace="t", model_file=ROOT / "config" / "model.yaml")
    model = load_model(settings.model_file)
    return Projector(
        settings, list(model.entities.values()), SchemaCatalog.load(ROOT / "schemas"), cache
    )


def marked(cache: InMemoryGoldenCache) -> set[str]:
    return cache.fill_state("customer")[1]


def test_a_loss_seen_before_the_assignment_is_refilled_when_it_comes() -> None:
    cache = InMemoryGoldenCache()  # empty: as after a Redis restart
    hub = projector(cache)
    consumer = Consumer()
    hub._refill_if_lost(consumer)  # type: ignore[arg-type]  # still joining the group
    assert marked(cache) == set(), "marked filled with nothing refilled"
    hub._on_assign(consumer, [TopicPartition(GOLDEN, 0, COMMITTED)])  # type: ignore[arg-type]
    assert [(tp.topic, tp.offset) for tp in consumer.assigned] == [(GOLDEN, OFFSET_BEGINNING)]
    assert consumer.committed == {(GOLDEN, 0): 0} and consumer.stored == {(GOLDEN, 0): 0}
    assert marked(cache) == {f"{GOLDEN}:0"}


def test_a_loss_seen_while_assigned_seeks_back_to_the_start() -> None:
    cache = InMemoryGoldenCache()
    hub = projector(cache)
    consumer = Consumer()
    hub._on_assign(consumer, [TopicPartition(GOLDEN, 0, COMMITTED)])  # type: ignore[arg-type]
    hub._on_assign(consumer, [TopicPartition(GOLDEN, 0, COMMITTED)])  # type: ignore[arg-type]
    assert consumer.assigned[0].offset == COMMITTED  # marked: resume where the group was
    cache.clear("customer")  # a flush: the views and their fill marker are gone
    hub._refill_if_lost(consumer)  # type: ignore[arg-type]
    assert consumer.seeks == [(GOLDEN, 0, OFFSET_BEGINNING)]
    assert marked(cache) == {f"{GOLDEN}:0"}
    hub._refill_if_lost(consumer)  # type: ignore[arg-type]
    assert len(consumer.seeks) == 1, "refilled again with the views already being refilled"


def test_each_projector_of_the_group_refills_its_own_partitions() -> None:
    cache = InMemoryGoldenCache()  # one Redis, two projectors with a partition each
    first, second = projector(cache), projector(cache)
    one, two = Consumer(), Consumer()
    first._on_assign(one, [TopicPartition(GOLDEN, 0, COMMITTED)])  # type: ignore[arg-type]
    second._on_assign(two, [TopicPartition(GOLDEN, 1, COMMITTED)])  # type: ignore[arg-type]
    cache.clear("customer")
    first._refill_if_lost(one)  # type: ignore[arg-type]
    assert one.seeks == [(GOLDEN, 0, OFFSET_BEGINNING)]
    # the first projector's refill does not stand for the second one's partition
    second._refill_if_lost(two)  # type: ignore[arg-type]
    assert two.seeks == [(GOLDEN, 1, OFFSET_BEGINNING)]
    assert marked(cache) == {f"{GOLDEN}:0", f"{GOLDEN}:1"}
    # a partition handed over once marked resumes from the group's (start) offset
    third = Consumer()
    projector(cache)._on_assign(third, [TopicPartition(GOLDEN, 1, COMMITTED)])  # type: ignore[arg-type]
    assert third.assigned[0].offset == COMMITTED and not third.committed


def test_partitions_whose_start_was_not_committed_stay_unmarked() -> None:
    cache = InMemoryGoldenCache()
    hub = projector(cache)
    consumer = Consumer(commit_fails=True)
    hub._on_assign(consumer, [TopicPartition(GOLDEN, 0, COMMITTED)])  # type: ignore[arg-type]
    assert consumer.assigned[0].offset == OFFSET_BEGINNING
    assert marked(cache) == set()  # a projector stopping now would hand over the old offsets
    consumer.commit_fails = False
    hub._refill_if_lost(consumer)  # type: ignore[arg-type]  # the next check
    assert consumer.seeks == [(GOLDEN, 0, OFFSET_BEGINNING)]
    assert consumer.committed == {(GOLDEN, 0): 0}
    assert marked(cache) == {f"{GOLDEN}:0"}


def test_an_unreachable_redis_leaves_the_offsets_alone() -> None:
    cache = InMemoryGoldenCache()
    cache.available = False
    hub = projector(cache)
    consumer = Consumer()
    hub._on_assign(consumer, [TopicPartition(GOLDEN, 0, COMMITTED)])  # type: ignore[arg-type]
    assert consumer.assigned[0].offset == COMMITTED and not consumer.committed
    cache.available = True
    hub._refill_if_lost(consumer)  # type: ignore[arg-type]
    assert consumer.seeks == [(GOLDEN, 0, OFFSET_BEGINNING)]
