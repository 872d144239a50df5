"""Runs the ``mdhub`` CLI with faust's seek to the committed offsets followed by a wait.

faust seeks the stream partitions to their committed offsets when table recovery completes, and
then resumes flow (faust-streaming issue #596). The wait widens the moment between the two, in
which the fetcher delivers messages from the committed offsets, until the streams' queues hold
``MDHUB_TEST_SEEK_QUEUED`` messages (default 16: twice the bundles the agent takes in one batch,
so that some are still queued when flow resumes) or 30 s have passed, so that a test sees what
happens to those messages every time rather than once in many runs. It prints how many messages
the queues held when it stopped waiting. Used as ``python slow_seek.py worker ...`` instead of
``python -m mdhub``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from faust.transport.consumer import Consumer

from mdhub.cli import main

_perform_seek = Consumer.perform_seek


async def _seek_then_wait(self: Consumer) -> None:
    await _perform_seek(self)
    wanted = int(os.environ.get("MDHUB_TEST_SEEK_QUEUED", "16"))
    queues = self.app.flow_control._queues
    deadline = time.monotonic() + 30
    while sum(q.qsize() for q in queues) < wanted and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    queued = sum(queue.qsize() for queue in queues)  # what faust's resume, next, finds
    print(f"slow_seek: {queued} message(s) queued after the wait", flush=True)


Consumer.perform_seek = _seek_then_wait  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
