"""Match-value normalisation: the canonical text of a value and the codes derived from it.

Everything here runs once per source record (in :func:`~mdhub.domain.matching.features`), so that
comparing two records needs no Unicode or string work. Nothing here raises on odd input: a value
that yields nothing (no letters for a phonetic code, no date) is simply left out.
"""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from typing import Any

import jellyfish

__all__ = [
    "date_parts",
    "digits",
    "metaphone",
    "normalize_text",
    "number",
    "soundex",
    "text_of",
]

_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")
_DIGITS = frozenset("0123456789")


def normalize_text(text: str) -> str:
    """Casefold ``text``, strip accents (NFKD without combining marks) and collapse whitespace."""
    text = text.casefold()
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(text.split())


def text_of(value: Any) -> str:
    """Return the canonical, normalised text of an attribute value ("" when there is none).

    Integral floats read like integers (``1.0`` and ``1`` agree), booleans as ``true``/``false``,
    dates in ISO form, and lists as their sorted, distinct normalised items joined by a space.
    """
    if isinstance(value, str):
        return normalize_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.date):  # dt.datetime too
        return value.isoformat()
    if isinstance(value, tuple | list | set | frozenset):
        items = {normalize_text(str(item)) for item in value}
        items.discard("")
        return " ".join(sorted(items))
    if value is None:
        return ""
    return normalize_text(str(value))


def date_parts(value: Any) -> list[int] | None:
    """Return ``[ordinal, year, month, day]`` of a date, datetime or ISO date string, else None."""
    if isinstance(value, dt.datetime):
        day = value.date()
    elif isinstance(value, dt.date):
        day = value
    elif isinstance(value, str):
        try:
            day = dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    else:
        return None
    return [day.toordinal(), day.year, day.month, day.day]


def number(value: Any) -> float | None:
    """Return a finite number as a float (numeric strings too), else None; booleans are not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            result = float(value)
        except OverflowError:
            return None
    elif isinstance(value, str):
        try:
            result = float(value)
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def soundex(text: str) -> str | None:
    """Return the Soundex code of normalised ``text`` (its ASCII letters only), else None."""
    letters = "".join(ch for ch in text if ch in _ASCII_LETTERS)
    return jellyfish.soundex(letters) if letters else None


def metaphone(text: str) -> str | None:
    """Return the Metaphone code of normalised ``text`` (ASCII letters and spaces), else None."""
    letters = "".join(ch for ch in text if ch in _ASCII_LETTERS or ch == " ").strip()
    code = jellyfish.metaphone(letters).strip() if letters else ""
    return code or None


def digits(text: str) -> str:
    """Return the ASCII digits of ``text``, in order."""
    return "".join(ch for ch in text if ch in _DIGITS)
