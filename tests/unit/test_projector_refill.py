"""Views gone from Redis are refilled from offset 0, even when the loss is seen before the
projector has its partitions."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from mdhub.cache.projector import Projector
from mdhub.modelfile import load_model
from mdhub.serde.catalog import SchemaCatalog
from mdhub.settings import Settings
from mdhub.testing import InMemoryGoldenCache

ROOT = Path(__file__).resolve().parents[2]


class Consumer:
    """The part of confluent-kafka's consumer the projector's refill uses."""

    def __init__(self) -> None:
        self.assigned: list[TopicPartition] = []
        self.seeks: list[tuple[str, int, int]] = []

    def assignment(self) -> list[TopicPartition]:
        return list(self.assigned)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = list(partitions)

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))


def projector(cache: InMemoryGoldenCache) -> Projector:
    settings = Settings(namespace="t", model_file=ROOT / "config" / "model.yaml")
    model = load_model(settings.model_file)
    return Projector(
        settings, list(model.entities.values()), SchemaCatalog.load(ROOT / "schemas"), cache
    )


def test_a_loss_seen_before_the_assignment_is_refilled_when_it_comes() -> None:
    cache = InMemoryGoldenCache()  # empty: as after a Redis restart
    hub = projector(cache)
    consumer = Consumer()
    hub._refill_if_lost(consumer)  # type: ignore[arg-type]  # still joining the group
    assert not cache.filled("customer"), "marked filled with nothing refilled"
    golden = TopicPartition("t.customer.golden.v1", 0, -1001)  # -1001: the committed offset
    hub._on_assign(consumer, [golden])  # type: ignore[arg-type]
    assert [(tp.topic, tp.offset) for tp in consumer.assigned] == [
        ("t.customer.golden.v1", OFFSET_BEGINNING)
    ]
    assert cache.filled("customer")


def test_a_loss_seen_while_assigned_seeks_back_to_the_start() -> None:
    cache = InMemoryGoldenCache()
    for entity in ("customer", "product"):
        cache.mark_filled(entity)
    hub = projector(cache)
    consumer = Consumer()
    hub._on_assign(consumer, [TopicPartition("t.customer.golden.v1", 0, -1001)])  # type: ignore[arg-type]
    assert consumer.assigned[0].offset == -1001  # views there: resume where the group was
    cache.clear("customer")  # a flush: the views and their fill marker are gone
    assert hub._lost()
    hub._refill_if_lost(consumer)  # type: ignore[arg-type]
    assert consumer.seeks == [("t.customer.golden.v1", 0, OFFSET_BEGINNING)]
    assert cache.filled("customer")
