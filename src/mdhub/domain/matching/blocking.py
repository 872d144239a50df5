"""Blocking keys: the candidate keys of a record, so only records sharing one are compared."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mdhub.domain.matching.features import Features
from mdhub.domain.matching.normalization import digits
from mdhub.domain.matching.plan import DATE, feature_key
from mdhub.domain.matching.spec import BlockingPart, MatchingSpec, Transform

__all__ = ["blocking_keys"]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


_PART: dict[Transform, Callable[[Features, BlockingPart], str]] = {
    Transform.VALUE: lambda f, p: _text(f.get(p.attribute)),
    Transform.SOUNDEX: lambda f, p: _text(f.get(feature_key(p.attribute, "soundex"))),
    Transform.METAPHONE: lambda f, p: _text(f.get(feature_key(p.attribute, "metaphone"))),
    Transform.YEAR: lambda f, p: (
        str(d[1]) if isinstance(d := f.get(feature_key(p.attribute, DATE)), list) else ""
    ),
    Transform.PREFIX: lambda f, p: _text(f.get(p.attribute))[: p.length],
    Transform.DIGITS: lambda f, p: digits(_text(f.get(p.attribute))),
    Transform.INITIAL: lambda f, p: _text(f.get(p.attribute))[:1],
}


def blocking_keys(spec: MatchingSpec, feats: Features) -> list[str]:
    """Return the record's blocking keys, in spec order, without duplicates.

    Each key is ``<name>=<part>|<part>...`` (e.g. ``name_year=H160|1906``); a key with a part the
    record lacks is left out.

    Args:
        spec: the entity type's matching spec.
        feats: the record's :func:`features`.
    """
    keys: list[str] = []
    for key in spec.blocking:
        parts = [_PART[part.transform](feats, part) for part in key.parts]
        if key.unordered:
            parts.sort()
        if all(parts):
            text = f"{key.name}={'|'.join(parts)}"
            if text not in keys:
                keys.append(text)
    return keys
