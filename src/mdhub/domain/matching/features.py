"""Match features: the normalised, precomputed match values of one source record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mdhub.domain.matching.normalization import text_of
from mdhub.domain.matching.spec import MatchingSpec
from mdhub.domain.records import Value

__all__ = ["Features", "features"]

Features = dict[str, Any]
"""The match values of one record: JSON-serialisable (str, int, float, lists of str and int)."""


def features(spec: MatchingSpec, attributes: Mapping[str, Value]) -> Features:
    """Precompute everything :func:`compare` and :func:`blocking_keys` need of one record.

    Strings are casefolded, accent-stripped and whitespace-collapsed; phonetic codes, nickname
    groups, date parts and numbers are derived once here. Attributes the spec does not use, and
    missing or empty values, are left out. The result survives a JSON round trip unchanged.

    Args:
        spec: the entity type's matching spec.
        attributes: the record's (validated, standardised) attribute values.
    """
    out: Features = {}
    for attribute, derived in spec._plan.feature_steps:
        value = attributes.get(attribute)
        if value is None:
            continue
        text = text_of(value)
        if not text:
            continue
        out[attribute] = text
        for key, derive in derived:
            result = derive(value, text)
            if result is not None:
                out[key] = result
    return out
