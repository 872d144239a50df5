"""Delivery results: one per published message, and the running counts of a publisher."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mdhub.domain.records import CandidateChange
from mdhub.errors import PublishError

__all__ = ["Delivery", "DeliveryTracker", "PendingDelivery", "PublishStats"]

_MAX_ERRORS = 20


@dataclass(frozen=True, slots=True)
class Delivery:
    """What Kafka said about one published message.

    Attributes:
        topic: the source topic, e.g. ``mdhub.customer.source.v1``.
        key: the Kafka key, ``<source>:<source_key>``.
        change_id: the change's id (lineage and audit refer to it).
        partition: where Kafka stored the message (``None`` when it failed).
        offset: the message's offset in that partition (``None`` when it failed).
        error: why the message could not be delivered; ``None`` when it was.
    """

    topic: str
    key: str
    change_id: str
    partition: int | None
    offset: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether Kafka has the message (acknowledged by every in-sync replica)."""
        return self.error is None

    def raise_for_error(self) -> Delivery:
        """Return the delivery, or raise :class:`~mdhub.errors.PublishError` if it failed."""
        if self.error is not None:
            raise PublishError(f"{self.key} was not delivered to {self.topic}: {self.error}")
        return self


@dataclass(frozen=True, slots=True)
class PublishStats:
    """A publisher's counts since it was created.

    Attributes:
        published: messages handed to the producer.
        delivered: messages Kafka acknowledged.
        failed: messages that could not be delivered.
        errors: the first errors (at most 20), as ``"<key>: <error>"``.
    """

    published: int
    delivered: int
    failed: int
    errors: tuple[str, ...] = ()

    @property
    def in_flight(self) -> int:
        """Messages waiting for Kafka's answer."""
        return self.published - self.delivered - self.failed


class DeliveryTracker:
    """Thread-safe counts of a publisher; delivery callbacks may run on any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._published = 0
        self._delivered = 0
        self._failed = 0
        self._errors: list[str] = []
        self.reported_failed = 0

    def sent(self) -> None:
        with self._lock:
            self._published += 1

    def unsent(self) -> None:
        """A message counted by :meth:`sent` that the producer refused after all."""
        with self._lock:
            self._published -= 1

    def done(self, delivery: Delivery) -> None:
        with self._lock:
            if delivery.ok:
                self._delivered += 1
            else:
                self._failed += 1
                if len(self._errors) < _MAX_ERRORS:
                    self._errors.append(f"{delivery.key}: {delivery.error}")

    def stats(self) -> PublishStats:
        with self._lock:
            return PublishStats(self._published, self._delivered, self._failed, tuple(self._errors))


class PendingDelivery:
    """The delivery result of one message, known once Kafka has answered.

    Attributes:
        change: the candidate change that was published (with the defaults filled in).
    """

    __slots__ = ("_event", "_poll", "_result", "change")

    def __init__(self, change: CandidateChange, poll: Callable[[float], None]) -> None:
        self.change = change
        self._poll = poll
        self._event = threading.Event()
        self._result: Delivery | None = None

    def __repr__(self) -> str:
        state = repr(self._result) if self._result is not None else "in flight"
        return f"<PendingDelivery {self.change.source_ref} {state}>"

    def done(self) -> bool:
        """Whether Kafka has answered (delivered or failed)."""
        return self._event.is_set()

    def result(self, timeout: float | None = None) -> Delivery:
        """Wait for Kafka's answer, serving the producer's delivery reports meanwhile.

        Args:
            timeout: seconds to wait at most; ``None`` waits as long as the producer retries
                (its ``message.timeout.ms``).

        Returns:
            the delivery; check :attr:`Delivery.ok` or call :meth:`Delivery.raise_for_error`.

        Raises:
            PublishError: no answer within ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._event.is_set():
            left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if left <= 0:
                raise PublishError(
                    f"{self.change.source_ref}: no delivery report within {timeout}s"
                )
            self._poll(left)
        assert self._result is not None
        return self._result

    def _resolve(self, delivery: Delivery) -> None:
        """Set the result (called from the producer's delivery callback)."""
        self._result = delivery
        self._event.set()
