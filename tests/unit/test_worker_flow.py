"""The worker's flow control keeps queued messages when flow is resumed while already on.

faust resumes flow once more when table recovery completes, after it sought the stream partitions
to their committed offsets; stock flow control then clears the messages fetched since
(faust-streaming #596, ``mdhub.stream.flow``). The integration test
``test_messages_fetched_while_recovery_seeks_are_processed`` shows it with a real worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import faust
import pytest
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from mdhub.stream.flow import StreamFlowControl, keep_queues_while_flowing


@pytest.fixture
def app(tmp_path: Any) -> Iterator[faust.App]:
    yield faust.App(
        "t-flow",
        broker="kafka://127.0.0.1:1",  # nothing connects
        store="memory://",
        datadir=str(tmp_path),
        web_enabled=False,
        autodiscover=False,
    )


def _queued_after(flow: FlowControlEvent, *steps: str) -> int:
    """Messages left in a queue managed by ``flow`` after flow was resumed, then three messages
    were put in, then ``steps`` (method names of ``flow``) ran."""
    queue: FlowControlQueue[int] = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    flow.resume()
    for message in range(3):
        queue.put_nowait(message)
    for step in steps:
        getattr(flow, step)()
    return queue.qsize()


def test_stock_flow_control_clears_the_queues_on_a_resume_while_flowing() -> None:
    # the behaviour worked around: when mode changes it, this module may no longer be needed
    assert _queued_after(FlowControlEvent(), "resume") == 0


def test_a_resume_while_flowing_keeps_the_queued_messages() -> None:
    assert _queued_after(StreamFlowControl(), "resume") == 3


def test_a_resume_after_a_suspension_clears_the_queues() -> None:
    flow = StreamFlowControl()
    assert _queued_after(flow, "suspend", "resume") == 0
    assert flow.is_active()


def test_a_suspended_flow_holds_puts_back_until_resumed() -> None:
    async def scenario() -> list[int]:
        flow = StreamFlowControl()  # suspended until resumed, like faust's
        queue: FlowControlQueue[int] = FlowControlQueue(flow_control=flow, clear_on_resume=True)
        order: list[int] = []

        async def put() -> None:
            await flow.acquire()
            queue.put_nowait(1)
            order.append(1)

        task = asyncio.ensure_future(put())
        await asyncio.sleep(0.01)
        order.append(0)
        flow.resume()
        await asyncio.wait_for(task, 5)  # a resume that never lets puts through fails here
        return [*order, queue.qsize()]

    assert asyncio.run(scenario()) == [0, 1, 1]


def test_the_worker_app_queues_register_with_its_flow_control(app: faust.App) -> None:
    keep_queues_while_flowing(app)
    channel = app.channel()

    async def queue_size_after_resume() -> int:
        channel.queue.put_nowait("m")  # type: ignore[attr-defined]
        app.flow_control.resume()  # from suspended: clears
        channel.queue.put_nowait("m")  # type: ignore[attr-defined]
        app.flow_control.resume()  # flowing: keeps
        return channel.queue.qsize()  # type: ignore[attr-defined]

    assert isinstance(app.flow_control, StreamFlowControl)
    assert asyncio.run(queue_size_after_resume()) == 1


def test_replacing_a_flow_control_already_in_use_is_refused(app: faust.App) -> None:
    assert isinstance(app.flow_control, FlowControlEvent)  # created, and maybe handed out
    with pytest.raises(RuntimeError, match="flow control was created before"):
        keep_queues_while_flowing(app)
