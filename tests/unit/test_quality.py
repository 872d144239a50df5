"""Pairwise precision, recall and F1 of the hub's clusters against the truth, by hand."""

from __future__ import annotations

import itertools
import random

import pytest

from mdhub.testdata import Quality, pairwise_quality

TRUTH = {
    # entity A: three records, B: two, C: one
    "crm:1": "A",
    "erp:1": "A",
    "webshop:1": "A",
    "crm:2": "B",
    "erp:2": "B",
    "crm:3": "C",
}


def test_a_perfect_answer() -> None:
    quality = pairwise_quality(TRUTH, {ref: f"g-{e}" for ref, e in TRUTH.items()})

    # A gives 3 pairs, B 1, C none
    assert quality == Quality(
        precision=1.0,
        recall=1.0,
        f1=1.0,
        true_positives=4,
        false_positives=0,
        false_negatives=0,
        records=6,
    )


def test_a_split_and_a_false_merge() -> None:
    clusters = {
        "crm:1": "g1",
        "erp:1": "g1",
        "webshop:1": "g2",  # A split in two: loses 2 of its 3 pairs
        "crm:2": "g3",
        "erp:2": "g3",
        "crm:3": "g3",  # C wrongly merged into B: 2 false pairs
    }

    quality = pairwise_quality(TRUTH, clusters)

    # predicted pairs: g1 1 + g3 3 = 4; true positives: (crm:1, erp:1) and (crm:2, erp:2)
    assert (quality.true_positives, quality.false_positives, quality.false_negatives) == (2, 2, 2)
    assert quality.precision == pytest.approx(2 / 4)
    assert quality.recall == pytest.approx(2 / 4)
    assert quality.f1 == pytest.approx(0.5)


def test_everything_in_one_cluster() -> None:
    quality = pairwise_quality(TRUTH, dict.fromkeys(TRUTH, "g"))

    # 6 records: 15 predicted pairs, 4 of them true
    assert quality.true_positives == 4
    assert quality.false_positives == 11
    assert quality.false_negatives == 0
    assert quality.precision == pytest.approx(4 / 15)
    assert quality.recall == 1.0
    assert quality.f1 == pytest.approx(2 * (4 / 15) / (4 / 15 + 1))


def test_every_record_alone() -> None:
    quality = pairwise_quality(TRUTH, {ref: ref for ref in TRUTH})

    assert (quality.true_positives, quality.false_positives, quality.false_negatives) == (0, 0, 4)
    assert quality.precision == 1.0  # nothing claimed, nothing wrong
    assert quality.recall == 0.0
    assert quality.f1 == 0.0


def test_records_the_hub_does_not_know_are_alone_and_extra_ones_are_ignored() -> None:
    clusters = {"crm:1": "g1", "erp:1": "g1", "crm:2": "g2", "crm:9": "g1", "erp:9": "g2"}

    quality = pairwise_quality(TRUTH, clusters)

    # webshop:1, erp:2 and crm:3 are missing: only (crm:1, erp:1) is predicted, and it is true
    assert (quality.true_positives, quality.false_positives, quality.false_negatives) == (1, 0, 3)
    assert quality.records == 6


def test_a_missing_record_is_not_merged_with_a_golden_id_equal_to_its_ref() -> None:
    truth = {"crm:1": "A", "crm:2": "A"}
    # the hub's golden id happens to look like a source ref: still not the missing record's cluster
    quality = pairwise_quality(truth, {"crm:1": "crm:2"})

    assert quality.true_positives == 0
    assert quality.false_negatives == 1


def test_empty_inputs() -> None:
    quality = pairwise_quality({}, {})

    assert quality.to_dict() == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "true_positives": 0,
        "false_positives": 0,
        "false_negatives": 0,
        "records": 0,
    }


def test_counts_agree_with_enumerating_every_pair() -> None:
    rng = random.Random(1)
    truth = {f"s:{i}": f"e{rng.randrange(40)}" for i in range(300)}
    clusters = {ref: f"g{rng.randrange(60)}" for ref in truth if rng.random() < 0.9}

    quality = pairwise_quality(truth, clusters)

    tp = fp = fn = 0
    for a, b in itertools.combinations(truth, 2):
        same_truth = truth[a] == truth[b]
        same_cluster = a in clusters and b in clusters and clusters[a] == clusters[b]
        tp += same_truth and same_cluster
        fp += same_cluster and not same_truth
        fn += same_truth and not same_cluster
    assert (quality.true_positives, quality.false_positives, quality.false_negatives) == (
        tp,
        fp,
        fn,
    )
    assert quality.precision == pytest.approx(tp / (tp + fp))
    assert quality.recall == pytest.approx(tp / (tp + fn))
