"""consume_ready: readers take the messages that have arrived instead of waiting for a batch."""

from __future__ import annotations

from typing import Any

from mdhub.kafka.reading import consume_ready


class _FetchQueue:
    """A consumer as librdkafka's ``consume(n, timeout)`` behaves: it returns at once when ``n``
    messages are queued, else it blocks for the whole timeout (recorded here) and returns those
    there are."""

    def __init__(self, queued: list[str]) -> None:
        self.queued = list(queued)
        self.blocked_s = 0.0

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        if len(self.queued) < num_messages:
            self.blocked_s += timeout
        taken, self.queued = self.queued[:num_messages], self.queued[num_messages:]
        return taken


def test_takes_what_has_arrived_without_waiting_for_a_full_batch() -> None:
    consumer = _FetchQueue(["a", "b", "c"])

    assert consume_ready(consumer, 500, timeout=0.5) == ["a", "b", "c"]  # type: ignore[arg-type]
    assert consumer.blocked_s == 0.0


def test_a_full_batch_at_most() -> None:
    consumer = _FetchQueue([str(i) for i in range(1200)])

    assert consume_ready(consumer, 500, timeout=0.5) == [str(i) for i in range(500)]  # type: ignore[arg-type]
    assert consume_ready(consumer, 500, timeout=0.5)[0] == "500"  # type: ignore[arg-type]
    assert len(consumer.queued) == 200
    assert consumer.blocked_s == 0.0


def test_waits_for_the_first_message_up_to_the_timeout() -> None:
    consumer = _FetchQueue([])

    assert consume_ready(consumer, 500, timeout=0.5) == []  # type: ignore[arg-type]
    assert consumer.blocked_s == 0.5
