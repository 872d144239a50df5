"""Realistic test data with ground truth, and how to score the hub's matching against it.

:func:`generate` makes source records of an entity type (people for ``customer``) that vary as a
:class:`Difficulty` asks, with the truth of which records are the same entity;
:func:`pairwise_quality` scores the hub's clusters against that truth.
"""

from __future__ import annotations

from mdhub.testdata.difficulty import Difficulty
from mdhub.testdata.generator import Generated, GeneratedRecord, Lookalike, Summary, generate
from mdhub.testdata.quality import Quality, pairwise_quality

__all__ = [
    "Difficulty",
    "Generated",
    "GeneratedRecord",
    "Lookalike",
    "Quality",
    "Summary",
    "generate",
    "pairwise_quality",
]
