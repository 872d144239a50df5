"""The accounting of a source partition: every message consumed ends accepted, unchanged, rejected
or pending review, and the counts must add up to the offsets consumed."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

__all__ = [
    "COMMANDS_LEDGER_PREFIX",
    "LEDGER_KEY_PREFIX",
    "Ledger",
    "commands_ledger_key",
    "ledger_key",
]

LEDGER_KEY_PREFIX = b"__ledger__/"
COMMANDS_LEDGER_PREFIX = LEDGER_KEY_PREFIX + b"commands/"

_FIELDS = {"accepted", "unchanged", "rejected", "pending_review"}


def ledger_key(partition: int) -> bytes:
    """The state-store key of a source partition's ledger."""
    return LEDGER_KEY_PREFIX + str(partition).encode()


def commands_ledger_key(partition: int) -> bytes:
    """The state-store key of a commands-topic partition's ledger."""
    return COMMANDS_LEDGER_PREFIX + str(partition).encode()


@dataclass(frozen=True, slots=True)
class Ledger:
    """Outcome counts of one source partition, and the offsets they cover."""

    first_offset: int = -1
    last_offset: int = -1
    accepted: int = 0
    unchanged: int = 0
    rejected: int = 0
    pending_review: int = 0

    def record(self, offset: int, outcome: str) -> Ledger:
        """Count the outcome of the message at ``offset``; a replayed offset counts nothing."""
        if offset <= self.last_offset:
            return self
        if outcome not in _FIELDS:
            raise ValueError(f"unknown outcome {outcome!r}")
        first = offset if self.first_offset < 0 else self.first_offset
        # one per input on the worker's hot path: built directly, dataclasses.replace costs more
        return Ledger(
            first_offset=first,
            last_offset=offset,
            accepted=self.accepted + (outcome == "accepted"),
            unchanged=self.unchanged + (outcome == "unchanged"),
            rejected=self.rejected + (outcome == "rejected"),
            pending_review=self.pending_review + (outcome == "pending_review"),
        )

    @property
    def consumed(self) -> int:
        """Messages in the offset range the ledger covers."""
        return 0 if self.first_offset < 0 else self.last_offset - self.first_offset + 1

    @property
    def accounted(self) -> int:
        """Messages with a recorded outcome."""
        return self.accepted + self.unchanged + self.rejected + self.pending_review

    @property
    def balanced(self) -> bool:
        """Whether every consumed message has exactly one outcome."""
        return self.consumed == self.accounted

    def to_bytes(self) -> bytes:
        """Serialize (JSON)."""
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> Ledger:
        """Deserialize; ``None`` is an empty ledger."""
        if not data:
            return cls()
        raw = json.loads(data)
        return cls(**{k: int(v) for k, v in raw.items() if k in cls.__dataclass_fields__})
