"""A :class:`MatchingSpec` compiled for the hot path: feature keys, weights and functions resolved.

Built once per spec (when it is created); :func:`features`, :func:`blocking_keys` and
:func:`compare` only read it. Feature keys are the attribute name for the normalised text and
``<attribute>:<kind>`` for derived values (``date``, ``num``, ``soundex``, ``metaphone``, ``nick``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mdhub.domain.matching.comparators import SIMILARITY, Similarity
from mdhub.domain.matching.nicknames import nickname_groups
from mdhub.domain.matching.normalization import date_parts, metaphone, number, soundex
from mdhub.domain.matching.scoring import Contribution, MatchScore, Verdict
from mdhub.domain.matching.spec import Method, PhoneticAlgorithm, RuleOutcome, RuleWhen, Transform

if TYPE_CHECKING:
    from mdhub.domain.matching.features import Features
    from mdhub.domain.matching.spec import ComparatorSpec, MatchingSpec

__all__ = ["CompiledComparator", "Narrowing", "Plan", "compile_plan", "date_ordinal", "feature_key"]

DATE = "date"
NUM = "num"
NICK = "nick"


def _date(value: Any, text: str) -> Any:
    return date_parts(value)


def _number(value: Any, text: str) -> Any:
    return number(value)


def _soundex(value: Any, text: str) -> Any:
    return soundex(text)


def _metaphone(value: Any, text: str) -> Any:
    return metaphone(text)


def _nicknames(value: Any, text: str) -> Any:
    return nickname_groups(text)


# kind -> (value, normalised text) -> derived feature or None (named functions: a plan pickles)
_DERIVE: dict[str, Callable[[Any, str], Any]] = {
    DATE: _date,
    NUM: _number,
    PhoneticAlgorithm.SOUNDEX.value: _soundex,
    PhoneticAlgorithm.METAPHONE.value: _metaphone,
    NICK: _nicknames,
}


def feature_key(attribute: str, kind: str | None = None) -> str:
    """The features key of ``attribute``'s normalised text, or of a value derived from it."""
    return attribute if kind is None else f"{attribute}:{kind}"


def _value_kind(c: ComparatorSpec) -> str | None:
    if c.method is Method.PHONETIC:
        return c.algorithm.value
    if c.method is Method.DATE:
        return DATE
    if c.method is Method.NUMERIC:
        return NUM
    return None


def _swap_detail(attribute: str, other: str) -> str:
    # first_name/last_name -> "swapped first/last name": the names' common suffix read once
    first, second = sorted((attribute, other))
    head1, _, tail1 = first.rpartition("_")
    head2, _, tail2 = second.rpartition("_")
    if head1 and head2 and tail1 == tail2:
        return f"swapped {head1}/{head2} {tail1}"
    return f"swapped {first}/{second}"


class CompiledComparator:
    """One comparator with everything :func:`compare` needs resolved to plain attributes."""

    __slots__ = (
        "agree",
        "agreed",
        "attribute",
        "disagree",
        "disagreed",
        "fn",
        "key",
        "method",
        "missing",
        "nick_key",
        "relative_tolerance",
        "slope",
        "swap_detail",
        "swap_key",
        "swapped_day_month",
        "swapped_similarity",
        "tolerance",
        "tolerance_days",
        "tolerance_detail",
        "tolerance_similarity",
        "wa",
        "wd",
    )

    def __init__(self, spec: ComparatorSpec) -> None:
        kind = _value_kind(spec)
        self.attribute = spec.attribute
        self.method = spec.method.value
        self.key = feature_key(spec.attribute, kind)
        self.fn: Similarity = SIMILARITY[spec.method]
        self.agree = spec.agree_level
        self.disagree = spec.disagree_level
        self.wa = spec.agreement_weight
        self.wd = spec.disagreement_weight
        self.slope = (self.wa - self.wd) / (self.agree - self.disagree)
        self.nick_key = feature_key(spec.attribute, NICK) if spec.nicknames else None
        self.swap_key = feature_key(spec.swap_with, kind) if spec.swap_with is not None else None
        self.swap_detail = (
            _swap_detail(spec.attribute, spec.swap_with) if spec.swap_with is not None else ""
        )
        self.tolerance_days = spec.tolerance_days
        self.tolerance_similarity = spec.tolerance_similarity
        self.tolerance_detail = f"within {spec.tolerance_days} days"
        self.swapped_day_month = spec.swapped_day_month
        self.swapped_similarity = spec.swapped_similarity
        self.tolerance = spec.tolerance
        self.relative_tolerance = spec.relative_tolerance
        self.missing = Contribution(self.attribute, self.method, None, 0.0)
        self.agreed = Contribution(self.attribute, self.method, 1.0, self.wa)
        self.disagreed = Contribution(self.attribute, self.method, 0.0, self.wd)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule with the index of its attribute's first comparator (None: compare the texts)."""

    name: str
    attribute: str
    different: bool
    no_match: bool
    comparator: int | None
    disagree: float
    decided: MatchScore = field(init=False, repr=False, compare=False)
    """What ``compare(..., early_exit=True)`` returns when this ``no_match`` rule fires."""

    def __post_init__(self) -> None:
        decided = MatchScore(0.0, Verdict.NO_MATCH, (), self.name, partial=True)
        object.__setattr__(self, "decided", decided)


_LAST_DAY = dt.date.max.toordinal()


def date_ordinal(feats: Features, key: str) -> int | None:
    """The ordinal of the date under ``key`` in a record's features (their ``[ordinal, year,
    month, day]``), or None when the record has none."""
    value = feats.get(key)
    return value[0] if isinstance(value, list) and len(value) == 4 else None


class Narrowing:
    """A ``different`` -> ``no_match`` rule on a date comparator, turned into the set of dates a
    candidate may have and not be told apart by it.

    Most candidates of a large block (people with a common name) are ruled out by such a rule
    (namesakes born on other days); the resolver drops those by their date alone instead of
    scoring them. Exact: a candidate whose date is not in :meth:`dates` makes the rule fire in
    :func:`~mdhub.domain.matching.scoring.compare` (the date is another one, not the day and
    month swapped, not within the tolerance); one without a date never does.
    """

    __slots__ = ("comparator", "key", "limit")

    def __init__(self, comparator: CompiledComparator, limit: float) -> None:
        self.comparator = comparator
        self.key = comparator.key
        self.limit = limit  # the rule fires at or below this similarity

    def dates(self, feats: Features) -> frozenset[int] | None:
        """The ordinals of the dates a candidate may have (None: any, ``feats`` has no date)."""
        if date_ordinal(feats, self.key) is None:
            return None
        mine = feats[self.key]
        c = self.comparator
        ordinal, year, month, day = mine
        options = {ordinal}
        if c.swapped_day_month:
            with contextlib.suppress(ValueError):  # no such day (31 April, ...)
                options.add(dt.date(year, day, month).toordinal())
        if c.tolerance_days:
            options.update(range(ordinal - c.tolerance_days, ordinal + c.tolerance_days + 1))
        kept: set[int] = set()
        for option in options:
            if not 1 <= option <= _LAST_DAY:  # a tolerance past 1 January 1 or 31 December 9999
                continue
            other = dt.date.fromordinal(option)
            parts = [option, other.year, other.month, other.day]
            if c.fn(c, mine, parts)[0] > self.limit:
                kept.add(option)
        return frozenset(kept)


@dataclass(frozen=True, slots=True)
class Plan:
    """The compiled spec."""

    comparators: tuple[CompiledComparator, ...]
    # (attribute, ((feature key, derive function), ...)) in a fixed order
    feature_steps: tuple[tuple[str, tuple[tuple[str, Callable[[Any, str], Any]], ...]], ...]
    rules: tuple[CompiledRule, ...]
    # For compare(..., early_exit=True): comparators that a no-match rule reads come first (the
    # cheapest first), and after each of them the rules reading it; rules on plain texts are
    # checked before any.
    exit_order: tuple[tuple[int, tuple[CompiledRule, ...]], ...] = ()
    text_exit_rules: tuple[CompiledRule, ...] = ()
    full_order: tuple[tuple[int, tuple[CompiledRule, ...]], ...] = ()
    narrowing: Narrowing | None = None


# Relative cost of one similarity: exact and numeric compare two values, a date a few parts; the
# fuzzy methods walk the strings (a swap check runs the method twice more, nicknames a set test).
_METHOD_COST = {
    Method.EXACT.value: 1,
    Method.NUMERIC.value: 1,
    Method.DATE.value: 2,
    Method.PHONETIC.value: 2,
}


def _cost(c: CompiledComparator) -> int:
    cost = _METHOD_COST.get(c.method, 5)
    if c.swap_key is not None:
        cost += 10
    if c.nick_key is not None:
        cost += 2
    return cost


def _exit_plan(
    comparators: tuple[CompiledComparator, ...], rules: tuple[CompiledRule, ...]
) -> tuple[tuple[tuple[int, tuple[CompiledRule, ...]], ...], tuple[CompiledRule, ...]]:
    by_comparator: dict[int, list[CompiledRule]] = {}
    for rule in rules:
        if rule.no_match and rule.comparator is not None:
            by_comparator.setdefault(rule.comparator, []).append(rule)
    # the cheapest comparators first: any no-match rule that fires decides, so the order changes
    # only which rule is named and how much work a pair that is ruled out costs
    first = sorted(by_comparator, key=lambda i: (_cost(comparators[i]), i))
    order = [(i, tuple(by_comparator[i])) for i in first]
    order += [(i, ()) for i in range(len(comparators)) if i not in by_comparator]
    texts = tuple(r for r in rules if r.no_match and r.comparator is None)
    return tuple(order), texts


def _derived_kinds(spec: MatchingSpec) -> dict[str, set[str]]:
    kinds: dict[str, set[str]] = {name: set() for name in sorted(spec.attributes)}
    for c in spec.comparators:
        kind = _value_kind(c)
        if kind is not None:
            kinds[c.attribute].add(kind)
            if c.swap_with is not None:
                kinds[c.swap_with].add(kind)
        if c.nicknames:
            kinds[c.attribute].add(NICK)
    for key in spec.blocking:
        for part in key.parts:
            if part.transform is Transform.YEAR:
                kinds[part.attribute].add(DATE)
            elif part.transform in (Transform.SOUNDEX, Transform.METAPHONE):
                kinds[part.attribute].add(part.transform.value)
    return kinds


def _narrowing(
    comparators: tuple[CompiledComparator, ...], rules: tuple[CompiledRule, ...]
) -> Narrowing | None:
    """The :class:`Narrowing` of the first date comparator a ``different`` ``no_match`` rule
    reads (None if there is none)."""
    for rule in rules:
        if not (rule.no_match and rule.different and rule.comparator is not None):
            continue
        c = comparators[rule.comparator]
        if c.method != Method.DATE.value or c.nick_key is not None or c.swap_key is not None:
            continue
        # the comparator's rules fire at or below the highest of their levels
        limit = max(
            r.disagree
            for r in rules
            if r.no_match and r.different and r.comparator == rule.comparator
        )
        if limit >= 0.0:  # a date that is none of the options has similarity 0.0
            return Narrowing(c, limit)
    return None


def compile_plan(spec: MatchingSpec) -> Plan:
    """Compile ``spec`` for :func:`features` and :func:`compare`."""
    comparators = tuple(CompiledComparator(c) for c in spec.comparators)
    first_comparator: dict[str, int] = {}
    for index, c in enumerate(spec.comparators):
        first_comparator.setdefault(c.attribute, index)
    rules = tuple(
        CompiledRule(
            name=rule.name,
            attribute=rule.attribute,
            different=rule.when is RuleWhen.DIFFERENT,
            no_match=rule.then is RuleOutcome.NO_MATCH,
            comparator=first_comparator.get(rule.attribute),
            disagree=(
                comparators[first_comparator[rule.attribute]].disagree
                if rule.attribute in first_comparator
                else 0.0
            ),
        )
        for rule in spec.rules
    )
    steps = tuple(
        (
            attribute,
            tuple((feature_key(attribute, kind), _DERIVE[kind]) for kind in sorted(kinds)),
        )
        for attribute, kinds in _derived_kinds(spec).items()
    )
    exit_order, text_exit_rules = _exit_plan(comparators, rules)
    return Plan(
        comparators=comparators,
        feature_steps=steps,
        rules=rules,
        exit_order=exit_order,
        text_exit_rules=text_exit_rules,
        full_order=tuple((i, ()) for i in range(len(comparators))),
        narrowing=_narrowing(comparators, rules),
    )
