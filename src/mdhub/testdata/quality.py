"""How well the hub's clusters agree with the truth: pairwise precision, recall and F1.

A pair is two source records in the same cluster. The counts come from cluster sizes and the sizes
of the intersections of true and predicted clusters (``n * (n - 1) / 2`` pairs each), never from
enumerating pairs, so a million records take a second.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Quality", "pairwise_quality"]


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


@dataclass(frozen=True, slots=True)
class Quality:
    """Pairwise agreement of predicted clusters with the true ones.

    Attributes:
        precision: true positives / predicted pairs (1.0 when no pair was predicted).
        recall: true positives / true pairs (1.0 when there are no true pairs).
        f1: the harmonic mean of precision and recall (0.0 when both are 0).
        true_positives: pairs in the same cluster in both.
        false_positives: pairs the hub put together that are different entities.
        false_negatives: pairs of one entity the hub kept apart.
        records: the source records compared (every record of the truth).
    """

    precision: float
    recall: float
    f1: float
    true_positives: int
    false_positives: int
    false_negatives: int
    records: int

    def to_dict(self) -> dict[str, Any]:
        """The fields by name (JSON-able)."""
        return asdict(self)


def pairwise_quality(truth: Mapping[str, str], clusters: Mapping[str, str]) -> Quality:
    """Compare the hub's clusters with the truth, pair by pair.

    Args:
        truth: source ref (``source:key``) -> true entity id.
        clusters: source ref -> the golden id the hub linked it to. A record of the truth missing
            here counts as a cluster of its own; records not in the truth are ignored.
    """
    true_sizes: Counter[str] = Counter()
    predicted_sizes: Counter[tuple[bool, str]] = Counter()
    both: Counter[tuple[str, bool, str]] = Counter()
    for ref, entity_id in truth.items():
        golden = clusters.get(ref)
        # a record the hub does not know is alone: key it by itself, apart from golden ids
        cluster = (True, golden) if golden is not None else (False, ref)
        true_sizes[entity_id] += 1
        predicted_sizes[cluster] += 1
        both[(entity_id, *cluster)] += 1
    tp = sum(_pairs(n) for n in both.values())
    true_pairs = sum(_pairs(n) for n in true_sizes.values())
    predicted_pairs = sum(_pairs(n) for n in predicted_sizes.values())
    precision = tp / predicted_pairs if predicted_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Quality(
        precision=precision,
        recall=recall,
        f1=f1,
        true_positives=tp,
        false_positives=predicted_pairs - tp,
        false_negatives=true_pairs - tp,
        records=len(truth),
    )
