"""Scoring a candidate pair: Fellegi-Sunter weights per comparator, thresholds, then rules.

The score is the sum of the comparators' weights (log2 units); a missing value on either side
weighs 0, neither for nor against. Deterministic rules decide over the score (``no_match`` rules win
over ``match`` rules); the contributions are returned either way, so every verdict explains itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

from mdhub.domain.matching.features import Features
from mdhub.domain.matching.spec import MatchingSpec

if TYPE_CHECKING:
    from mdhub.domain.matching.plan import CompiledRule

__all__ = ["Contribution", "MatchScore", "Verdict", "combine", "compare"]


class Verdict(StrEnum):
    """What a pair's score (or a rule) decides."""

    MATCH = "match"
    REVIEW = "review"
    NO_MATCH = "no_match"


class Contribution(NamedTuple):
    """One comparator's part in a score (a named tuple: made for every scored pair, cheaply)."""

    attribute: str
    method: str
    similarity: float | None
    """None when either record lacks the value (then the weight is 0.0)."""
    weight: float
    """This comparator's contribution to the score, in log2 units."""
    detail: str = ""
    """How a partial or special agreement came about: ``nickname``, ``swapped day/month``..."""

    def to_dict(self) -> dict[str, Any]:
        """Return the contribution as a JSON-serialisable mapping."""
        return {
            "attribute": self.attribute,
            "method": self.method,
            "similarity": self.similarity,
            "weight": self.weight,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class MatchScore:
    """A pair's score, verdict and explanation."""

    score: float
    verdict: Verdict
    contributions: tuple[Contribution, ...]
    rule: str | None = None
    """The deterministic rule that decided the verdict, if any."""
    partial: bool = False
    """Scoring stopped when a ``no_match`` rule fired (``compare(..., early_exit=True)``): the
    result names the rule, with no score or contributions."""

    @property
    def ruled_out(self) -> bool:
        """A ``no_match`` rule decided: the two records are provably different entities."""
        return self.rule is not None and self.verdict is Verdict.NO_MATCH

    def to_dict(self) -> dict[str, Any]:
        """Return the score as a JSON-serialisable mapping."""
        return {
            "score": self.score,
            "verdict": self.verdict.value,
            "rule": self.rule,
            "contributions": [c.to_dict() for c in self.contributions],
        }


def compare(
    spec: MatchingSpec, a: Features, b: Features, *, early_exit: bool = False
) -> MatchScore:
    """Score two records' :func:`features` and decide a verdict.

    Each comparator yields a similarity in [0, 1] (nickname groups and swapped attributes can lift
    a low direct similarity to agreement) and a weight interpolated between its disagreement and
    agreement weights. The verdict is ``match`` at or above the match threshold, ``review`` at or
    above the review threshold, else ``no_match``, unless a deterministic rule fires. Symmetric:
    ``compare(spec, a, b)`` and ``compare(spec, b, a)`` give the same score.

    Args:
        spec: the entity type's matching spec.
        a: one record's features.
        b: the other record's features.
        early_exit: compare the attributes of ``no_match`` rules first and stop as soon as one
            fires: the verdict is ``no_match`` with the rule, as always, but without a score or
            contributions (``partial`` is set; callers that exit early only need the rule).
            Otherwise the result is the same as without it.
    """
    plan = spec._plan
    a_get = a.get
    b_get = b.get
    comparators = plan.comparators
    slots: list[Any] = [None] * len(comparators)
    if early_exit:
        for rule in plan.text_exit_rules:
            if _fires(rule, a, b, slots):
                return rule.decided
        order = plan.exit_order
    else:
        order = plan.full_order
    for index, exit_rules in order:
        c = comparators[index]
        va = a_get(c.key)
        vb = b_get(c.key)
        if va is None or vb is None:
            slots[index] = c.missing
        else:
            sim, detail = c.fn(c, va, vb)
            agree = c.agree
            if sim < agree:
                if c.nick_key is not None:
                    na = a_get(c.nick_key)
                    nb = b_get(c.nick_key)
                    if na is not None and nb is not None and any(g in nb for g in na):
                        sim, detail = 1.0, "nickname"
                if sim < agree and c.swap_key is not None:
                    sa = a_get(c.swap_key)
                    sb = b_get(c.swap_key)
                    if sa is not None and sb is not None:
                        cross = min(c.fn(c, va, sb)[0], c.fn(c, sa, vb)[0])
                        if cross >= agree:
                            sim, detail = cross, c.swap_detail
            # the common outcomes reuse the comparator's prebuilt (immutable) contributions
            if sim == 1.0 and not detail:
                slots[index] = c.agreed
            elif sim == 0.0 and not detail:
                slots[index] = c.disagreed
            else:
                if sim >= agree:
                    weight = c.wa
                elif sim <= c.disagree:
                    weight = c.wd
                else:
                    weight = c.wd + (sim - c.disagree) * c.slope
                slots[index] = Contribution(c.attribute, c.method, sim, weight, detail)
        if exit_rules:
            for rule in exit_rules:
                if _fires(rule, a, b, slots):
                    return rule.decided
    contributions: list[Contribution] = slots
    total = 0.0
    for x in contributions:  # in the comparators' order: the same float sum every time
        total += x.weight

    rule_name: str | None = None
    verdict: Verdict | None = None
    for rule in plan.rules:
        if _fires(rule, a, b, contributions):
            if rule.no_match:
                rule_name, verdict = rule.name, Verdict.NO_MATCH
                break
            if verdict is None:
                rule_name, verdict = rule.name, Verdict.MATCH
    if verdict is None:
        verdict = _verdict(spec, total)
    return MatchScore(total, verdict, tuple(contributions), rule_name)


def combine(spec: MatchingSpec, scores: Sequence[MatchScore]) -> MatchScore:
    """Score a record against a group of records that are one entity (a golden record's sources),
    from its full scores against each of them.

    The group holds everything known about the entity, so each comparator takes the best
    agreement any of its records gives (people keep several addresses and e-mails): it
    disagrees only when none agrees, and it is missing only when no record holds both values.
    Evidence adds up across the group (an e-mail agreeing with one record and a birth date with
    another), and a disagreement with one record is not hidden by a record that lacks the value.
    A ``match`` rule that fired for any pair decides ``match``. ``no_match`` rules are the
    caller's: a record that is provably another entity than one of the group's is not the
    group's entity (scores with a ``no_match`` rule must not be passed). With one score, that
    score is the result.

    Args:
        spec: the entity type's matching spec.
        scores: full (not ``partial``) scores of the record against each record of the group.
    """
    if len(scores) == 1:
        return scores[0]
    if not scores:
        raise ValueError("combine needs at least one score")
    slots = list(scores[0].contributions)
    rule: str | None = scores[0].rule
    for score in scores[1:]:
        if rule is None:
            rule = score.rule
        for index, c in enumerate(score.contributions):
            if c.similarity is None:
                continue
            current = slots[index]
            if current.similarity is None or c.weight > current.weight:
                slots[index] = c
    total = 0.0
    for c in slots:  # in the comparators' order, as compare sums them
        total += c.weight
    if rule is not None:
        return MatchScore(total, Verdict.MATCH, tuple(slots), rule)
    return MatchScore(total, _verdict(spec, total), tuple(slots))


def _verdict(spec: MatchingSpec, total: float) -> Verdict:
    if total >= spec.match_threshold:
        return Verdict.MATCH
    if total >= spec.review_threshold:
        return Verdict.REVIEW
    return Verdict.NO_MATCH


def _fires(rule: CompiledRule, a: Features, b: Features, contributions: list[Contribution]) -> bool:
    if rule.comparator is None:
        # no comparator for the attribute: its normalised texts decide
        va = a.get(rule.attribute)
        vb = b.get(rule.attribute)
        if va is None or vb is None:
            return False
        return bool(va != vb) if rule.different else bool(va == vb)
    sim = contributions[rule.comparator].similarity
    if sim is None:
        return False
    return sim <= rule.disagree if rule.different else sim >= 1.0
