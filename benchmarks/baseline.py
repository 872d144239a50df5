"""B0: the bare confluent-kafka loop the hub is compared with.

Consume -> fastavro decode -> fastavro encode -> produce (idempotent, ``acks=all``), one thread, no
domain logic, no state and no Redis: the most a Python process can do with these records here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, Producer

from mdhub.kafka.config import consumer_config, producer_config
from mdhub.serde.catalog import AvroCodec
from mdhub.settings import KafkaSettings

from topics import create_topics

__all__ = ["BaselineResult", "produce_all", "run_baseline"]

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class BaselineResult:
    """What B0 measured.

    Attributes:
        records: messages consumed and re-produced.
        publish_s: producing the input (all queued and acknowledged).
        loop_s: from the first consumed message to the output fully flushed.
        loop_with_join_s: the same, counted from ``subscribe`` (includes the group join).
    """

    records: int
    publish_s: float
    loop_s: float
    loop_with_join_s: float

    @property
    def publish_rate(self) -> float:
        """Input records acknowledged per second."""
        return self.records / self.publish_s

    @property
    def rate(self) -> float:
        """Records per second of the consume-decode-encode-produce loop."""
        return self.records / self.loop_s


def produce_all(
    producer: Producer,
    topic: str,
    messages: Sequence[tuple[bytes, bytes]],
    on_progress: Progress | None = None,
) -> None:
    """Queue every message as fast as librdkafka takes them (no flush)."""
    produce, poll = producer.produce, producer.poll
    for index, (key, value) in enumerate(messages):
        while True:
            try:
                produce(topic, value, key)
                break
            except BufferError:
                poll(0.01)
        if index % 2000 == 0:
            poll(0)
            if on_progress is not None:
                on_progress(index)


def run_baseline(
    kafka: KafkaSettings,
    namespace: str,
    partitions: int,
    codec: AvroCodec,
    messages: Sequence[tuple[bytes, bytes]],
    on_progress: Callable[[str, int], None] | None = None,
    timeout_s: float = 600.0,
) -> BaselineResult:
    """Publish ``messages`` to a B0 input topic, then time the consume-to-produce loop."""
    source, sink = f"{namespace}.b0.in", f"{namespace}.b0.out"
    create_topics(kafka, [source, sink], partitions)
    total = len(messages)

    def report(stage: str) -> Progress | None:
        if on_progress is None:
            return None
        return lambda done: on_progress(stage, done)

    producer = Producer(producer_config(kafka))
    started = time.perf_counter()
    produce_all(producer, source, messages, report("publish"))
    if producer.flush(timeout_s):
        raise RuntimeError(f"B0: the input was not acknowledged within {timeout_s:.0f}s")
    publish_s = time.perf_counter() - started
    if on_progress is not None:
        on_progress("publish", total)

    consumer = Consumer(
        consumer_config(kafka, f"{namespace}-b0", **{"enable.auto.offset.store": True})
    )
    out = Producer(producer_config(kafka))
    decode, encode = codec.decode, codec.encode
    produce, poll = out.produce, out.poll
    try:
        joined = time.perf_counter()
        consumer.subscribe([source])
        first: float | None = None
        done = 0
        deadline = time.monotonic() + timeout_s
        while done < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"B0: only {done} of {total} records consumed in {timeout_s}s")
            batch = consumer.consume(1000, timeout=0.5)
            if not batch:
                continue
            if first is None:
                first = time.perf_counter()
            for msg in batch:
                raw = msg.value()
                if msg.error() is not None or raw is None:
                    continue
                value = encode(decode(raw))
                while True:
                    try:
                        produce(sink, value, msg.key())
                        break
                    except BufferError:
                        poll(0.01)
                done += 1
            poll(0)
            if on_progress is not None:
                on_progress("loop", done)
        if out.flush(timeout_s):
            raise RuntimeError("B0: the output was not acknowledged in time")
        ended = time.perf_counter()
    finally:
        consumer.close()
    assert first is not None
    return BaselineResult(total, publish_s, ended - first, ended - joined)
