"""The worker's faust consumer asks the broker to hold a fetch for 0.1 s, not faust's 1.5 s.

A partition faust paused under buffer pressure is fetched again only with the next fetch request;
with faust's wait the worker idled ~1 s at a time with bundles waiting (``mdhub.stream.consumer``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import faust
import pytest

from mdhub.stream.consumer import FETCH_MAX_WAIT_MS, ShortFetchConsumer, short_fetch_waits


@pytest.fixture
def app(tmp_path: Any) -> Iterator[faust.App]:
    yield faust.App(
        "t-consumer",
        broker="kafka://127.0.0.1:1",  # nothing connects: the consumers are only built
        store="memory://",
        datadir=str(tmp_path),
        web_enabled=False,
        autodiscover=False,
    )


def _consumer_and_wait(app: faust.App) -> tuple[type, int]:
    """The app's consumer class, and the fetch wait of the aiokafka consumer its thread builds
    (not started). Built inside a running loop, which faust and aiokafka then use."""

    async def build() -> tuple[type, int]:
        consumer = app.consumer
        thread = consumer._thread
        aiokafka_consumer = thread._create_worker_consumer(app.transport)
        try:
            return type(consumer), int(aiokafka_consumer._fetch_max_wait_ms)
        finally:
            # neither was started: close what they opened, which stopping them would have
            await aiokafka_consumer.stop()
            thread.thread_loop.close()

    return asyncio.run(build())


def test_faust_alone_holds_fetches_for_one_and_a_half_seconds(app: faust.App) -> None:
    # the behaviour worked around: when faust changes it, this module may no longer be needed
    assert _consumer_and_wait(app)[1] == 1500


def test_the_worker_consumer_holds_fetches_for_a_tenth_of_a_second(app: faust.App) -> None:
    short_fetch_waits(app)

    consumer_class, wait_ms = _consumer_and_wait(app)
    assert consumer_class is ShortFetchConsumer
    assert wait_ms == FETCH_MAX_WAIT_MS == 100
