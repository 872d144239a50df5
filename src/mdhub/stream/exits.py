"""Exit codes of a worker that stops itself so that a restart resumes its work."""

from __future__ import annotations

__all__ = ["EXIT_OUTPUT_FAILED", "EXIT_STALLED", "RESTARTABLE"]

EXIT_OUTPUT_FAILED = 70
"""A batch's outputs were not delivered in time: its offsets are not committed, a restart replays it."""

EXIT_STALLED = 75
"""Inputs waited and the stream took none (see :mod:`mdhub.stream.stall`)."""

RESTARTABLE = {
    EXIT_OUTPUT_FAILED: "could not deliver its outputs",
    EXIT_STALLED: "its stream stalled",
}
"""Exit code -> why; a supervisor (``mdhub run``, a restart policy) starts the worker again."""
