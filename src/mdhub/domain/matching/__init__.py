"""Identity matching: blocking keys, Fellegi-Sunter scoring and deterministic rules (pure code).

Per entity type, the model's ``match:`` section (parsed by :func:`parse_matching`) says which
records are candidates (blocking keys), how pairs are compared (comparators with m/u
probabilities) and where the thresholds lie. The resolve stage works in three steps::

    feats = features(spec, record.attributes)      # once per record; JSON-serialisable
    keys = blocking_keys(spec, feats)              # candidate lookup
    score = compare(spec, feats, candidate_feats)  # per candidate: score, verdict, explanation

Public surface: exactly ``__all__``.
"""

from __future__ import annotations

from mdhub.domain.matching.blocking import blocking_keys
from mdhub.domain.matching.features import Features, features
from mdhub.domain.matching.nicknames import NICKNAME_GROUPS
from mdhub.domain.matching.parsing import ProblemSink, parse_matching
from mdhub.domain.matching.scoring import Contribution, MatchScore, Verdict, combine, compare
from mdhub.domain.matching.spec import (
    BlockingKeySpec,
    BlockingPart,
    ComparatorSpec,
    MatchingSpec,
    MatchRule,
    Method,
    PhoneticAlgorithm,
    RuleOutcome,
    RuleWhen,
    Transform,
)

__all__ = [
    "NICKNAME_GROUPS",
    "BlockingKeySpec",
    "BlockingPart",
    "ComparatorSpec",
    "Contribution",
    "Features",
    "MatchRule",
    "MatchScore",
    "MatchingSpec",
    "Method",
    "PhoneticAlgorithm",
    "ProblemSink",
    "RuleOutcome",
    "RuleWhen",
    "Transform",
    "Verdict",
    "blocking_keys",
    "combine",
    "compare",
    "features",
    "parse_matching",
]
