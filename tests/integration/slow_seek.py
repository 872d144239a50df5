"""Runs the ``mdhub`` CLI with faust's seek to the committed offsets followed by a pause.

faust seeks the stream partitions to their committed offsets when table recovery completes, and
then resumes flow (faust-streaming issue #596). The pause widens the moment between the two, in
which the fetcher delivers messages from the committed offsets, to ``MDHUB_TEST_SEEK_PAUSE_S``
seconds (default 1.5), so that a test sees what happens to those messages every time rather than
once in many runs. It prints how many messages the streams' queues hold after the pause. Used as ``python slow_seek.py worker ...`` instead of ``python -m mdhub``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from faust.transport.consumer import Consumer

from mdhub.cli import main

_perform_seek = Consumer.perform_seek


async def _seek_then_pause(self: Consumer) -> None:
    await _perform_seek(self)
    await asyncio.sleep(float(os.environ.get("MDHUB_TEST_SEEK_PAUSE_S", "1.5")))
    # what faust's resume, next, finds in the streams' queues (and stock faust clears)
    queued = sum(queue.qsize() for queue in self.app.flow_control._queues)
    print(f"slow_seek: {queued} message(s) queued after the pause", flush=True)


Consumer.perform_seek = _seek_then_pause  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
