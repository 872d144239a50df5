"""Similarity functions, one per comparator method, over precomputed features.

Each takes the compiled comparator and the two records' feature values and returns
``(similarity in [0, 1], detail)``. They run on the hot path (several per candidate pair), so they
do no normalisation and build no objects beyond the result. The fuzzy ones order their arguments
first, so a score never depends on which record came first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rapidfuzz.distance import JaroWinkler, Levenshtein
from rapidfuzz.fuzz import token_set_ratio

from mdhub.domain.matching.spec import Method

if TYPE_CHECKING:
    from mdhub.domain.matching.plan import CompiledComparator

__all__ = ["SIMILARITY", "Similarity"]

Similarity = Callable[["CompiledComparator", Any, Any], tuple[float, str]]

_SAME = (1.0, "")
_DIFFERENT = (0.0, "")

_jaro_winkler = JaroWinkler.normalized_similarity
_levenshtein = Levenshtein.normalized_similarity


def _exact(c: CompiledComparator, x: Any, y: Any) -> tuple[float, str]:
    return _SAME if x == y else _DIFFERENT


def _jaro_winkler_similarity(c: CompiledComparator, x: Any, y: Any) -> tuple[float, str]:
    if x == y:
        return _SAME
    if x > y:
        x, y = y, x
    return _jaro_winkler(x, y), ""


def _levenshtein_similarity(c: CompiledComparator, x: Any, y: Any) -> tuple[float, str]:
    if x == y:
        return _SAME
    if x > y:
        x, y = y, x
    return _levenshtein(x, y), ""


def _token_set_similarity(c: CompiledComparator, x: Any, y: Any) -> tuple[float, str]:
    if x == y:
        return _SAME
    if x > y:
        x, y = y, x
    return token_set_ratio(x, y) / 100.0, ""


def _date_similarity(c: CompiledComparator, x: Any, y: Any) -> tuple[float, str]:
    # x, y: [ordinal, year, month, day]
    if x[0] == y[0]:
        return _SAME
    if c.swapped_day_month and x[1] == y[1] and x[2] == y[3] and x[3] == y[2]:
        return c.swapped_similarity, "swapped day/month"
    if c.tolerance_days and abs(x[0] - y[0]) <= c.tolerance_days:
        return c.tolerance_similarity, c.tolerance_detail
    return _DIFFERENT


def _numeric_similarity(c: CompiledComparator, x: Any, y: Any) -> tuple[float, str]:
    if x == y:
        return _SAME
    allowed = max(c.tolerance, c.relative_tolerance * max(abs(x), abs(y)))
    if allowed > 0.0:
        ratio = abs(x - y) / allowed  # NaN (inf/inf) fails the test below
        if ratio <= 1.0:
            # 1.0 for equal values down to 0.5 at the edge of the tolerance
            return 1.0 - 0.5 * ratio, f"within {allowed:g}"
    return _DIFFERENT


SIMILARITY: dict[Method, Similarity] = {
    Method.EXACT: _exact,
    Method.JARO_WINKLER: _jaro_winkler_similarity,
    Method.LEVENSHTEIN: _levenshtein_similarity,
    Method.TOKEN_SET: _token_set_similarity,
    Method.PHONETIC: _exact,  # on the precomputed phonetic codes
    Method.DATE: _date_similarity,
    Method.NUMERIC: _numeric_similarity,
}
"""The similarity function of each method."""
