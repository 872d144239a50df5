"""Bundles of routed inputs: how the router splits a round, the Avro round trip, and counting the
inputs behind a resolve topic's offsets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mdhub.errors import DecodeError
from mdhub.serde.catalog import SchemaCatalog
from mdhub.stream.app import _inputs
from mdhub.stream.bundle import (
    H_BUNDLE,
    MAX_BYTES,
    MAX_INPUTS,
    BundleCodec,
    InputCounter,
    oversized,
    runs,
)
from mdhub.stream.pipeline import Message
from mdhub.stream.router import H_OFFSET, H_PARTITION, H_TIMESTAMP, H_TOPIC, Pending

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def codec() -> BundleCodec:
    return BundleCodec(SchemaCatalog.load(ROOT / "schemas"))


def pending(offset: int, size: int = 10, key: bytes | None = b"crm:1") -> Pending:
    return Pending("ns.customer.source.v1", 2, offset, 1_700_000_000_000 + offset, key, b"v" * size)


def test_runs_keep_the_order_and_cap_inputs_and_bytes() -> None:
    records = [pending(i) for i in range(2 * MAX_INPUTS + 7)]
    split = list(runs(records))
    assert [len(r) for r in split] == [MAX_INPUTS, MAX_INPUTS, 7]
    assert [p.offset for run in split for p in run] == list(range(2 * MAX_INPUTS + 7))
    assert [len(r) for r in runs(records, 100)][:3] == [100, 100, 100]

    big = [pending(i, size=MAX_BYTES // 3) for i in range(7)]
    by_bytes = list(runs(big))
    assert [len(r) for r in by_bytes] == [2, 2, 2, 1]
    assert all(
        sum(len(p.key or b"") + len(p.value or b"") for p in r) <= MAX_BYTES for r in by_bytes
    )


def test_an_input_larger_than_a_bundle_is_a_run_of_its_own() -> None:
    records = [pending(0), pending(1, size=MAX_BYTES + 1), pending(2)]
    split = list(runs(records))
    assert [[p.offset for p in r] for r in split] == [[0], [1], [2]]
    assert [oversized(r[0]) for r in split] == [False, True, False]
    assert not list(runs([]))


def test_a_bundle_round_trips_every_coordinate_key_and_value(codec: BundleCodec) -> None:
    records = [
        pending(5),
        Pending("ns.customer.commands.v1", 0, 9, 1_700_000_000_123, None, None),
        pending(6, size=0, key=b""),
    ]
    decoded = codec.decode(codec.encode(records))
    assert decoded == [
        Message(p.topic, p.partition, p.offset, p.timestamp, p.key, p.value) for p in records
    ]


def test_bytes_that_are_no_bundle_raise_a_decode_error(codec: BundleCodec) -> None:
    with pytest.raises(DecodeError):
        codec.decode(b"\x00not a bundle")
    with pytest.raises(DecodeError):
        codec.decode(None)


@dataclass
class _KafkaMessage:
    value: bytes | None
    headers: Any
    topic: str = "ns.customer.resolve.v1"
    partition: int = 0
    offset: int = 40
    key: bytes | None = None
    timestamp: float | None = 1_700_000_001.5


@dataclass
class _Event:
    message: _KafkaMessage


def test_the_worker_reads_a_bundle_and_a_single_forwarded_input(codec: BundleCodec) -> None:
    records = [pending(1), pending(2)]
    bundle = _Event(_KafkaMessage(codec.encode(records), [(H_BUNDLE, b"2")]))
    assert _inputs(bundle, codec) == codec.decode(codec.encode(records))  # type: ignore[arg-type]

    headers = [
        (H_TOPIC, b"ns.customer.source.v1"),
        (H_PARTITION, b"3"),
        (H_OFFSET, b"77"),
        (H_TIMESTAMP, b"1700000000999"),
    ]
    single = _Event(_KafkaMessage(b"payload", headers, key=b"crm:9"))
    assert _inputs(single, codec) == [  # type: ignore[arg-type]
        Message("ns.customer.source.v1", 3, 77, 1_700_000_000_999, b"crm:9", b"payload")
    ]
    direct = _Event(_KafkaMessage(b"raw", None, key=b"crm:8"))
    assert _inputs(direct, codec) == [  # type: ignore[arg-type]
        Message("ns.customer.resolve.v1", 0, 40, 1_700_000_001_500, b"crm:8", b"raw")
    ]


class _Record:
    def __init__(self, offset: int, headers: list[tuple[str, bytes]] | None) -> None:
        self._offset = offset
        self._headers = headers

    def error(self) -> None:
        return None

    def offset(self) -> int:
        return self._offset

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers


class _Consumer:
    """Serves one partition's messages from the assigned offset, at most two (and at most the
    number asked for) per call."""

    def __init__(self, log: list[list[tuple[str, bytes]] | None]) -> None:
        self.log = log
        self.position = 0
        self.read: list[int] = []

    def assign(self, partitions: list[Any]) -> None:
        self.position = partitions[0].offset

    def unassign(self) -> None:
        self.position = -1

    def consume(self, n: int, timeout: float) -> list[_Record]:
        out = [
            _Record(o, self.log[o])
            for o in range(self.position, min(len(self.log), self.position + min(n, 2)))
        ]
        self.position += len(out)
        self.read.extend(r.offset() for r in out)
        return out


def test_input_counter_counts_bundles_and_does_not_read_what_it_counted_again() -> None:
    log: list[list[tuple[str, bytes]] | None] = [
        [(H_BUNDLE, b"250")],
        None,  # a single input (no headers at all)
        [(H_TOPIC, b"t"), (H_OFFSET, b"3")],  # a single forwarded input
        [(H_BUNDLE, b"17")],
        [(H_BUNDLE, b"3")],
    ]
    consumer = _Consumer(log)
    counter = InputCounter(consumer, "ns.customer.resolve.v1")  # type: ignore[arg-type]
    assert counter.inputs({0: 0}) == 0
    assert counter.inputs({0: 2}) == 251
    assert counter.inputs({0: 4}) == 269
    assert counter.inputs({0: 4}) == 269
    assert counter.inputs({0: 5}) == 272
    # what was counted is not read again: only the message just past an end, read ahead and left
    # uncounted (offsets 2 and 4), is read once more by the next count
    assert consumer.read == [0, 1, 2, 2, 3, 4, 4]
