"""The per-partition ledger that reconciliation reads."""

from __future__ import annotations

import pytest

from mdhub.domain.ledger import Ledger, ledger_key


def test_outcomes_are_counted_once_per_offset() -> None:
    ledger = Ledger()
    for offset, outcome in [(0, "accepted"), (1, "rejected"), (2, "unchanged"), (3, "accepted")]:
        ledger = ledger.record(offset, outcome)
    replayed = ledger.record(2, "accepted").record(3, "rejected")  # at-least-once redelivery
    assert replayed == ledger
    assert (ledger.accepted, ledger.unchanged, ledger.rejected) == (2, 1, 1)
    assert ledger.consumed == 4 and ledger.accounted == 4 and ledger.balanced


def test_a_skipped_offset_unbalances_the_ledger() -> None:
    ledger = Ledger().record(10, "accepted").record(12, "accepted")  # offset 11 never processed
    assert ledger.consumed == 3
    assert ledger.accounted == 2
    assert not ledger.balanced


def test_round_trip_and_keys() -> None:
    ledger = Ledger().record(5, "unchanged")
    assert Ledger.from_bytes(ledger.to_bytes()) == ledger
    assert Ledger.from_bytes(None) == Ledger()
    assert ledger_key(3) == b"__ledger__/3"
    with pytest.raises(ValueError, match="unknown outcome"):
        ledger.record(6, "lost")
