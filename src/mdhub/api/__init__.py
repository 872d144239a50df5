"""The REST read API (FastAPI): golden records, their history and cross-references."""

from __future__ import annotations

from mdhub.api.app import (
    PROBLEM_JSON,
    CauseOut,
    ChangeEventOut,
    GoldenAtVersionOut,
    HistoryPage,
    Problem,
    XrefOut,
    create_app,
)

__all__ = [
    "PROBLEM_JSON",
    "CauseOut",
    "ChangeEventOut",
    "GoldenAtVersionOut",
    "HistoryPage",
    "Problem",
    "XrefOut",
    "create_app",
]
