"""A batch of the worker's agent ends whole: finished when the worker stops, or the worker exits.

faust acknowledges a batch's inputs however the agent's processing of it ends, and then commits
their offsets, so a batch cut short would lose its inputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from mdhub.stream import app as app_module
from mdhub.stream.app import _EntityAgent
from mdhub.stream.exits import EXIT_BATCH_FAILED
from mdhub.stream.stall import StallWatch


class Stream:
    """take_events as faust's: yields batches, acknowledges each in a ``finally``."""

    def __init__(self, batches: list[list[str]]) -> None:
        self.batches = batches
        self.acked: list[str] = []

    async def take_events(self, n: int, within: float) -> AsyncIterator[list[str]]:
        for batch in self.batches:
            try:
                yield batch
            finally:
                self.acked += batch


def agent(process: Any) -> _EntityAgent:
    runner = _EntityAgent.__new__(_EntityAgent)
    runner.batch_size, runner.window = 10, 0.01
    runner.stall = StallWatch(60.0)
    runner.pipeline = SimpleNamespace(entity=SimpleNamespace(name="customer"))  # type: ignore[assignment]
    runner._batch = process  # type: ignore[method-assign]
    return runner


class Exited(Exception):
    pass


def test_a_failing_batch_exits_before_its_inputs_are_acknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acked_at_exit: list[str] = []

    def exit_(code: int) -> None:  # os._exit ends the process here: nothing runs after it
        acked_at_exit.extend(stream.acked)
        raise Exited(code)

    monkeypatch.setattr(app_module.os, "_exit", exit_)
    monkeypatch.setattr(app_module.logging, "shutdown", lambda: None)
    done: list[list[str]] = []

    async def process(events: list[str]) -> None:
        if "bad" in events:
            raise KeyError("a bug")
        done.append(events)

    stream = Stream([["a", "b"], ["c", "bad"]])

    async def main() -> None:
        async for _ in agent(process).run(stream):  # type: ignore[arg-type]
            pass

    with pytest.raises(Exited) as exited:
        asyncio.run(main())
    assert exited.value.args == (EXIT_BATCH_FAILED,)
    assert done == [["a", "b"]]
    assert acked_at_exit == ["a", "b"]  # the failed batch's inputs were not acknowledged


def test_a_worker_told_to_stop_finishes_its_batch_first() -> None:
    finished: list[list[str]] = []

    async def process(events: list[str]) -> None:
        await asyncio.sleep(0.2)  # e.g. waiting for Kafka to take the outputs
        finished.append(events)

    stream = Stream([["a", "b"], ["c"]])

    async def main() -> None:
        async def consume() -> None:
            async for _ in agent(process).run(stream):  # type: ignore[arg-type]
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)  # mid-batch
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert finished == [["a", "b"]]  # finished before the stop went on
    assert stream.acked == ["a", "b"]  # and only then acknowledged; the next never started
