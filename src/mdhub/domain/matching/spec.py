"""The matching section of an entity type, as frozen values: blocking keys, comparators, rules.

:func:`~mdhub.domain.matching.parsing.parse_matching` builds these from the model file; building
them by hand (tests, tools) is fine too. A :class:`MatchingSpec` compiles its comparators into a
private plan once, when it is created, so scoring a pair does no per-call set-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mdhub.domain.matching.plan import Plan

__all__ = [
    "BlockingKeySpec",
    "BlockingPart",
    "ComparatorSpec",
    "MatchRule",
    "MatchingSpec",
    "Method",
    "PhoneticAlgorithm",
    "RuleOutcome",
    "RuleWhen",
    "Transform",
]


class Method(StrEnum):
    """How a comparator measures the similarity of one attribute's two values."""

    EXACT = "exact"
    JARO_WINKLER = "jaro_winkler"
    LEVENSHTEIN = "levenshtein"
    TOKEN_SET = "token_set"
    PHONETIC = "phonetic"
    DATE = "date"
    NUMERIC = "numeric"


FUZZY_METHODS = frozenset({Method.JARO_WINKLER, Method.LEVENSHTEIN, Method.TOKEN_SET})
"""Methods with a graded similarity; their default ``agree``/``disagree`` levels are 0.92/0.75."""


class PhoneticAlgorithm(StrEnum):
    """The phonetic code a ``phonetic`` comparator compares (jellyfish)."""

    METAPHONE = "metaphone"
    SOUNDEX = "soundex"


class Transform(StrEnum):
    """How a blocking-key part turns an attribute's value into a key fragment."""

    VALUE = "value"
    SOUNDEX = "soundex"
    METAPHONE = "metaphone"
    YEAR = "year"
    PREFIX = "prefix"
    DIGITS = "digits"
    INITIAL = "initial"


class RuleWhen(StrEnum):
    """When a deterministic rule fires: both values present and the same, or both and different."""

    SAME = "same"
    DIFFERENT = "different"


class RuleOutcome(StrEnum):
    """What a deterministic rule decides when it fires."""

    MATCH = "match"
    NO_MATCH = "no_match"


def default_levels(method: Method) -> tuple[float, float]:
    """Return the default ``(agree, disagree)`` similarity levels of ``method``."""
    return (0.92, 0.75) if method in FUZZY_METHODS else (1.0, 0.0)


@dataclass(frozen=True, slots=True)
class BlockingPart:
    """One part of a blocking key: an attribute and how its value is transformed."""

    attribute: str
    transform: Transform = Transform.VALUE
    length: int = 4
    """Characters kept by the ``prefix`` transform."""


@dataclass(frozen=True, slots=True)
class BlockingKeySpec:
    """A named blocking key: records sharing all its parts are candidates for comparison."""

    name: str
    parts: tuple[BlockingPart, ...]
    unordered: bool = False  # parts sorted first: swapped values (first/last name) share the key


@dataclass(frozen=True, slots=True)
class ComparatorSpec:
    """Compares one attribute of two records and weighs the outcome (Fellegi-Sunter).

    ``m`` is the probability that the values agree when the records are one entity, ``u`` that they
    agree when they are not. A similarity at or above ``agree`` earns ``log2(m/u)``, at or below
    ``disagree`` it earns ``log2((1-m)/(1-u))``, and in between it is interpolated linearly.
    ``agree``/``disagree`` left as ``None`` take the method's defaults (:func:`default_levels`).
    """

    attribute: str
    method: Method
    m: float
    u: float
    agree: float | None = None
    disagree: float | None = None
    nicknames: bool = False
    swap_with: str | None = None
    algorithm: PhoneticAlgorithm = PhoneticAlgorithm.METAPHONE
    tolerance_days: int = 0
    tolerance_similarity: float = 0.9
    swapped_day_month: bool = False
    swapped_similarity: float = 0.85
    tolerance: float = 0.0
    relative_tolerance: float = 0.0

    def __post_init__(self) -> None:
        if not (0.0 < self.u < self.m < 1.0):
            raise ValueError(f"comparator {self.attribute}: needs 0 < u < m < 1")
        if not self.disagree_level < self.agree_level:
            raise ValueError(f"comparator {self.attribute}: needs disagree < agree")

    @property
    def agree_level(self) -> float:
        """The similarity from which the full agreement weight is given."""
        return default_levels(self.method)[0] if self.agree is None else self.agree

    @property
    def disagree_level(self) -> float:
        """The similarity up to which the full disagreement weight is given."""
        return default_levels(self.method)[1] if self.disagree is None else self.disagree

    @property
    def agreement_weight(self) -> float:
        """``log2(m/u)``: the weight of a similarity at or above :attr:`agree_level`."""
        return math.log2(self.m / self.u)

    @property
    def disagreement_weight(self) -> float:
        """``log2((1-m)/(1-u))``: the weight of a similarity at or below :attr:`disagree_level`."""
        return math.log2((1.0 - self.m) / (1.0 - self.u))

    def weight(self, similarity: float | None) -> float:
        """Return the weight of ``similarity`` (0.0 when a value is missing, ``None``)."""
        if similarity is None:
            return 0.0
        agree, disagree = self.agree_level, self.disagree_level
        if similarity >= agree:
            return self.agreement_weight
        if similarity <= disagree:
            return self.disagreement_weight
        span = self.agreement_weight - self.disagreement_weight
        return self.disagreement_weight + span * (similarity - disagree) / (agree - disagree)


@dataclass(frozen=True, slots=True)
class MatchRule:
    """A deterministic rule that decides a pair's verdict whatever its score."""

    name: str
    attribute: str
    when: RuleWhen
    then: RuleOutcome


@dataclass(frozen=True, slots=True)
class MatchingSpec:
    """How records of one entity type are matched: candidates, scoring and thresholds."""

    blocking: tuple[BlockingKeySpec, ...]
    comparators: tuple[ComparatorSpec, ...]
    rules: tuple[MatchRule, ...]
    match_threshold: float
    review_threshold: float
    max_block_size: int = 200
    ambiguity_margin: float = 0.0
    """A match scoring below ``match_threshold + ambiguity_margin`` is not linked while another
    golden record scores at least ``review_threshold``: both go to review (0: off)."""
    _plan: Plan = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.review_threshold > self.match_threshold:
            raise ValueError("review_threshold must be at most match_threshold")
        if self.ambiguity_margin < 0:
            raise ValueError("ambiguity_margin must be at least 0")
        # imported here: the plan module needs these classes, this one only needs the result
        from mdhub.domain.matching.plan import compile_plan

        object.__setattr__(self, "_plan", compile_plan(self))

    @property
    def attributes(self) -> frozenset[str]:
        """Every attribute the spec reads: blocking parts, comparators (and ``swap_with``) and
        rules."""
        names = {part.attribute for key in self.blocking for part in key.parts}
        names.update(c.attribute for c in self.comparators)
        names.update(c.swap_with for c in self.comparators if c.swap_with is not None)
        names.update(rule.attribute for rule in self.rules)
        return frozenset(names)
