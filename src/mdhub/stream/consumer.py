"""faust's aiokafka consumer, with a fetch wait short enough for a paused partition to resume.

faust pauses a partition when the stream's buffer is under pressure (``stream_buffer_maxsize``)
and resumes it once the agent has drained half of it. aiokafka does not interrupt a fetch request
in flight for that: the resumed partition is fetched again only with the next request, and faust
asks the broker to hold every request for up to 1.5 s (``fetch_max_wait_ms=1500``, not a faust
setting) while the worker's other partitions (commands, another entity's shard) have nothing.
At a steady 1,000 new keys/s the worker then idled ~1 s at a time with bundles waiting in Kafka,
the buffer filled again during each wait, and the hub stayed in that state: publish -> golden
record produced stayed at p50 1.3-1.5 s for the rest of the run instead of ~160-200 ms (the
benchmark's latency phase, 30 s at 1,000/s: 7 of 24 runs; with this module 0 of 9, p95 301-549 ms
publish -> Redis, and 0 of 3 in a later session).

:data:`FETCH_MAX_WAIT_MS` bounds that wait. An idle worker sends a few more empty fetches.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["FETCH_MAX_WAIT_MS", "ShortFetchConsumer", "short_fetch_waits"]

FETCH_MAX_WAIT_MS = 100
"""How long the broker may hold a fetch request of the worker for data to arrive (ms)."""


class _ShortFetchThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read once, by start(), when it builds the fetcher (aiokafka is pinned)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class ShortFetchConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer whose fetch requests wait at most :data:`FETCH_MAX_WAIT_MS`."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ShortFetchThread(self, loop=self.loop, beacon=self.beacon)


def short_fetch_waits(app: Any) -> None:
    """Make ``app`` (a faust app on the ``kafka://`` transport) consume with
    :class:`ShortFetchConsumer`; call it before the app starts."""
    app.transport.Consumer = ShortFetchConsumer
