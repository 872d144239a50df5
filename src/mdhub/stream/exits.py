"""Exit codes of a worker that stops itself so that a restart resumes its work."""

from __future__ import annotations

__all__ = [
    "EXIT_BATCH_FAILED",
    "EXIT_OUTPUT_FAILED",
    "EXIT_STALLED",
    "EXIT_STREAM_GAP",
    "RESTARTABLE",
]

EXIT_OUTPUT_FAILED = 70
"""A batch's outputs were not delivered in time: its offsets are not committed, a restart replays it."""

EXIT_BATCH_FAILED = 71
"""A batch raised an error (a bug, named in the log): the worker stops before faust acknowledges
the batch's inputs, so they are not lost; restarting it replays the batch, likely into the same
error, so ``mdhub run`` stops instead."""

EXIT_STALLED = 75
"""Inputs waited and the stream took none (see :mod:`mdhub.stream.stall`)."""

EXIT_STREAM_GAP = 76
"""The stream skipped messages of a resolve partition (see :mod:`mdhub.stream.continuity`)."""

RESTARTABLE = {
    EXIT_OUTPUT_FAILED: "could not deliver its outputs",
    EXIT_STALLED: "its stream stalled",
    EXIT_STREAM_GAP: "its stream skipped messages",
}
"""Exit code -> why; a supervisor (``mdhub run``, a restart policy) starts the worker again."""
