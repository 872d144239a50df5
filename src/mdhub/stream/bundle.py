"""Bundles: the router forwards runs of inputs as one resolve-topic message.

faust spends ~60 us of the worker's main thread on every message it hands to an agent (fetch
bookkeeping, an event object, flow control, acknowledgement), measured with a bare
``take_events`` agent over 20,000 messages: about a sixth of what the resolve stage itself costs
per input (~350 us). So the router packs the inputs it forwards in one round into bundles (Avro
``mdhub.common.InputBundle``: each input's source coordinates, key and value, untouched), and
the worker unpacks them; faust then sees one message per up to :data:`MAX_INPUTS` inputs.

A bundle is marked by the :data:`H_BUNDLE` header, whose value is its number of inputs, so that
progress in inputs can be counted from the headers alone (:class:`InputCounter`). An input too
large for a bundle is forwarded on its own as before (its coordinates in headers), and the worker
reads both forms.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol, TypeVar

from confluent_kafka import Consumer, KafkaException, TopicPartition

from mdhub.errors import DecodeError
from mdhub.kafka.reading import consume_ready
from mdhub.serde.catalog import AvroCodec, SchemaCatalog
from mdhub.stream.pipeline import Message

__all__ = [
    "H_BUNDLE",
    "MAX_BYTES",
    "MAX_INPUTS",
    "SCHEMA",
    "BundleCodec",
    "InputCounter",
    "Routed",
    "oversized",
    "runs",
]

SCHEMA = "mdhub.common.InputBundle"
H_BUNDLE = "mdhub-bundle"  # value: the number of inputs in the bundle (ASCII digits)
MAX_INPUTS = 250
"""Inputs per bundle at most (the router uses fewer when the worker's batch size is smaller)."""
MAX_BYTES = 512 * 1024
"""Bytes of keys and values per bundle at most, well under Kafka's default 1 MB message limit;
an input larger than this travels alone, in its single form."""


class Routed(Protocol):
    """What the router knows of an input."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


R = TypeVar("R", bound=Routed)


def _size(record: Routed) -> int:
    return len(record.key or b"") + len(record.value or b"")


def runs(records: Sequence[R], max_inputs: int = MAX_INPUTS) -> Iterator[list[R]]:
    """Split ``records`` (in order) into bundles of at most ``max_inputs`` inputs and
    :data:`MAX_BYTES`; an input larger than :data:`MAX_BYTES` is a run of its own."""
    run: list[R] = []
    size = 0
    for record in records:
        n = _size(record)
        if run and (len(run) >= max_inputs or size + n > MAX_BYTES):
            yield run
            run, size = [], 0
        run.append(record)
        size += n
    if run:
        yield run


def oversized(record: Routed) -> bool:
    """Whether ``record`` must be forwarded alone, in its single form."""
    return _size(record) > MAX_BYTES


class BundleCodec:
    """Encode the router's runs of inputs; decode them in the worker."""

    def __init__(self, catalog: SchemaCatalog) -> None:
        self.codec: AvroCodec = catalog.codec(SCHEMA)

    def encode(self, records: Sequence[Routed]) -> bytes:
        """The bundle of ``records`` (in this order)."""
        return self.codec.encode(
            {
                "inputs": [
                    {
                        "topic": r.topic,
                        "partition": r.partition,
                        "offset": r.offset,
                        "timestamp": r.timestamp,
                        "key": r.key,
                        "value": r.value,
                    }
                    for r in records
                ]
            }
        )

    def decode(self, data: bytes | None) -> list[Message]:
        """The inputs of a bundle, as the messages they were on their own topics.

        Raises:
            DecodeError: the bytes are not a bundle (the router wrote them, so this is a bug or
                a foreign producer on the internal resolve topic).
        """
        if not data:
            raise DecodeError("UNDECODABLE", "a bundle without a value")
        return [
            Message(i["topic"], i["partition"], i["offset"], i["timestamp"], i["key"], i["value"])
            for i in self.codec.decode(data)["inputs"]
        ]


def _inputs_of(
    headers: Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]] | None,
) -> int:
    """The inputs a resolve-topic message carries, from its headers."""
    items = headers.items() if isinstance(headers, Mapping) else headers or ()
    for name, value in items:
        if name == H_BUNDLE and value is not None:
            return int(value)
    return 1


class InputCounter:
    """Counts the inputs of a resolve topic's messages below given offsets, from the headers
    (a bundle counts its inputs, a message in single form one), reading each message once."""

    def __init__(self, consumer: Consumer, topic: str) -> None:
        self.consumer = consumer
        self.topic = topic
        self._read: dict[int, int] = {}  # partition -> next offset to read
        self._inputs: dict[int, int] = {}  # partition -> inputs below that offset

    def inputs(self, offsets: Mapping[int, int], timeout: float = 10.0) -> int:
        """Inputs of every partition's messages below ``offsets[partition]``.

        Raises:
            KafkaException: Kafka did not deliver the messages within ``timeout`` seconds.
        """
        for partition, end in offsets.items():
            start = self._read.get(partition, 0)
            if end > start:
                self._inputs[partition] = self._inputs.get(partition, 0) + self._count(
                    partition, start, end, timeout
                )
                self._read[partition] = end
        return sum(self._inputs.get(p, 0) for p in offsets)

    def _count(self, partition: int, start: int, end: int, timeout: float) -> int:
        self.consumer.assign([TopicPartition(self.topic, partition, start)])
        counted = 0
        position = start
        deadline = time.monotonic() + timeout
        try:
            while position < end:
                if time.monotonic() > deadline:
                    raise KafkaException(
                        f"could not read {self.topic}[{partition}] up to offset {end} within "
                        f"{timeout:.0f}s"
                    )
                for msg in consume_ready(self.consumer, 1000, 0.5):
                    if msg.error() is not None:
                        continue
                    offset = int(msg.offset() or 0)
                    if offset >= end:
                        position = end
                        break
                    counted += _inputs_of(msg.headers())
                    position = offset + 1
        finally:
            self.consumer.unassign()
        return counted
