"""Standardizers named in the entity model: case, e-mail, phone numbers to E.164, countries to ISO.

A value that cannot be standardized (a phone number that is not one, an unknown country) is a
violation with its own reason code, collected with the others; nothing here raises on bad input.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import lru_cache

import phonenumbers
import pycountry

from mdhub.domain.model import EntityModel, Standardizer
from mdhub.domain.records import CandidateChange, Reason, Value

__all__ = [
    "INVALID_PHONE",
    "PHONES",
    "UNKNOWN_COUNTRY",
    "PhoneCache",
    "PhoneKey",
    "apply_standardizers",
    "parse_phone",
]

INVALID_PHONE = "INVALID_PHONE"
UNKNOWN_COUNTRY = "UNKNOWN_COUNTRY"

_Result = tuple[str | None, str | None]  # (standardized value, problem)


def _email(value: str) -> _Result:
    # Domains are case-insensitive; local parts are in practice, and matching relies on it.
    return value.strip().lower(), None


def parse_phone(value: str, region: str | None) -> _Result:
    """A phone number in E.164 form, or why ``value`` is none (``region`` for national forms)."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        return (
            None,
            f"{value!r} is not a phone number ({exc}); give it in international form, e.g. +49 30 1234567",
        )
    if not phonenumbers.is_possible_number(number):
        return None, f"{value!r} is not a possible phone number"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


PhoneKey = tuple[str, str | None]
"""``(text, region)``: what :func:`parse_phone` is given."""


class PhoneCache:
    """:func:`parse_phone`'s answers for the most recently used ``size`` distinct inputs.

    Parsing a number costs 12 us on its own and ~25 us in the worker (phonenumbers is pure
    Python). An update that keeps its number finds it here if that number was among the last
    65,536 distinct ones (17.8 MB when full, measured). The worker's helper process
    (:mod:`mdhub.stream.ahead`) parses the numbers of a batch before the agent reaches them and
    :meth:`add` puts its answers here; a helper's process keeps the answers it computed for
    :meth:`take_computed`.
    """

    def __init__(self, size: int = 65536) -> None:
        self._size = size
        self._answers: OrderedDict[PhoneKey, _Result] = OrderedDict()
        self._computed: list[tuple[PhoneKey, _Result]] | None = None
        self.parsed = 0
        """How many answers this cache computed (not found, nor added)."""

    def __len__(self) -> int:
        return len(self._answers)

    def standardize(self, value: str, region: str | None) -> _Result:
        """:func:`parse_phone`'s answer, from the cache when it has it."""
        key = (value, region)
        answers = self._answers
        answer = answers.get(key)
        if answer is not None:
            answers.move_to_end(key)
            return answer
        answer = parse_phone(value, region)
        self.parsed += 1
        self._put(key, answer)
        if self._computed is not None:
            self._computed.append((key, answer))
        return answer

    def add(self, answers: Iterable[tuple[PhoneKey, _Result]]) -> None:
        """Keep answers computed elsewhere (by :func:`parse_phone`, in another process)."""
        for key, answer in answers:
            self._put(key, answer)

    def keep_computed(self) -> None:
        """From now on, note each answer this cache computes, for :meth:`take_computed`."""
        self._computed = []

    def take_computed(self) -> list[tuple[PhoneKey, _Result]]:
        """The answers computed since the last call (after :meth:`keep_computed`)."""
        if self._computed is None:
            return []
        computed, self._computed = self._computed, []
        return computed

    def _put(self, key: PhoneKey, answer: _Result) -> None:
        answers = self._answers
        answers[key] = answer
        answers.move_to_end(key)
        if len(answers) > self._size:
            answers.popitem(last=False)


PHONES = PhoneCache()
"""The process's phone number answers (used by :func:`apply_standardizers`)."""


@lru_cache(maxsize=1024)
def _country(value: str) -> _Result:
    text = value.strip()
    try:
        found = pycountry.countries.lookup(text)
    except LookupError:
        return None, f"{value!r} is not a country (ISO 3166 code or name)"
    return str(found.alpha_2), None


def _simple(fn: Callable[[str], str]) -> Callable[[str], _Result]:
    return lambda value: (fn(value), None)


_PLAIN: dict[Standardizer, Callable[[str], _Result]] = {
    Standardizer.LOWER: _simple(str.lower),
    Standardizer.UPPER: _simple(str.upper),
    Standardizer.TITLE: _simple(str.title),
    Standardizer.EMAIL: _email,
    Standardizer.COUNTRY_ISO2: _country,
}

_CODES = {Standardizer.PHONE_E164: INVALID_PHONE, Standardizer.COUNTRY_ISO2: UNKNOWN_COUNTRY}


def _one(kind: Standardizer, value: str, region: str | None) -> _Result:
    if kind is Standardizer.PHONE_E164:
        return PHONES.standardize(value, region)
    return _PLAIN[kind](value)


def apply_standardizers(
    entity: EntityModel, change: CandidateChange
) -> tuple[CandidateChange, list[Reason]]:
    """Apply each attribute's standardizers; return the new change and every value that failed."""
    reasons: list[Reason] = []
    attributes: dict[str, Value] = dict(change.attributes)
    for name, spec in entity.attributes.items():
        if not spec.standardizers or name not in attributes:
            continue
        value = attributes[name]
        values = list(value) if isinstance(value, tuple) else [value]
        out: list[str] = []
        for item in values:
            current: str | None = str(item)
            for kind in spec.standardizers:
                assert current is not None
                current, problem = _one(kind, current, entity.default_region)
                if problem is not None:
                    reasons.append(
                        Reason(_CODES.get(kind, "INVALID_VALUE"), f"{name}: {problem}", name)
                    )
                    break
            if current is not None:
                out.append(current)
        if isinstance(value, tuple):
            attributes[name] = tuple(dict.fromkeys(out))
        elif out:
            attributes[name] = out[0]
    return replace(change, attributes=attributes), reasons
