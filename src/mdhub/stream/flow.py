"""faust's flow control, without the queue clearing that loses messages after table recovery.

faust (``app.flow_control``, mode's ``FlowControlEvent``) holds the messages its fetcher delivers
back while a rebalance is under way, and clears the streams' queues on every ``resume()``. The
clearing is right when flow really was suspended: the queues may hold messages of partitions this
worker no longer owns, or that it will read again from the committed offsets. But faust calls
``resume()`` once more when table recovery completes (``Recovery.on_recovery_completed``), after
it resumed the stream partitions and sought them to their committed offsets, while flow has been on
since recovery began. The messages the fetcher delivered after that seek are then cleared, and the
fetcher goes on after them: a gap that no seek closes (faust-streaming issue #596, open).

The worker detects such a gap (:mod:`mdhub.stream.continuity`) and exits for a restart, which
resumes from the committed offset: nothing is lost, but the restart costs the worker its start-up,
and when no later message reveals the gap, the stall watch's 60 s first (the integration test
``test_messages_fetched_while_recovery_seeks_are_processed``, with stock flow control: exit 75 and
a restart, ~110 s for the test against ~28 s with this module). With :class:`StreamFlowControl` the queues are cleared only when
flow resumes after a suspension, so the clearing faust means to do still happens: on a rebalance
faust suspends flow and clears the queues itself, and the ``resume()`` that ends the suspension
clears them again. The messages the fetcher delivered between the stream partitions' seek and the
redundant ``resume()`` stay in the queues. A message the worker then reads twice (one fetched
before the seek, and again after it) is left out by :mod:`mdhub.stream.continuity`.
"""

from __future__ import annotations

from typing import Any

from mode.utils.queues import FlowControlEvent

__all__ = ["StreamFlowControl", "keep_queues_while_flowing"]


class StreamFlowControl(FlowControlEvent):
    """A ``FlowControlEvent`` whose ``resume()`` does nothing while flow is already on."""

    def resume(self) -> None:
        """Resume flow into the queues and clear them, unless flow was on already."""
        if self.is_active():
            return
        super().resume()


def keep_queues_while_flowing(app: Any) -> None:
    """Give ``app`` (a faust app) a :class:`StreamFlowControl`; call it before anything creates a
    stream or topic queue, as those register with the flow control they find first.

    Raises:
        RuntimeError: the app's flow control exists already.
    """
    if "flow_control" in app.__dict__:  # faust's cached property was read: queues may hold it
        raise RuntimeError("the app's flow control was created before it could be replaced")
    app.flow_control = StreamFlowControl()  # its events find the running loop when awaited
