"""How hard the generated data is to match: the probability of each kind of variation."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

__all__ = ["Difficulty"]


@dataclass(frozen=True, slots=True)
class Difficulty:
    """Probabilities (0 to 1) of the variations the generator puts into source records.

    Attributes:
        typo: a source record has one typing error (transposition, deletion, substitution or
            insertion) in a name (and, at half the rate, in its street or city).
        nickname: a source record uses the person's nickname (Robert -> Bob) where one exists.
        swapped_names: a source record has first and last name swapped.
        missing: each optional attribute a source record would carry is left empty.
        formatting: each attribute is written differently (case, spaces, phone layout, country
            as a name or alpha-3 code, abbreviated street kinds, the city's other name).
        moved: a person moves house; sources that hold the address send a later version.
        new_email: a person changes e-mail address; sources that hold it send a later version.
        lookalikes: the share of people generated as a look-alike of another person (a different
            person with the same first and last name, or a household member with the same last
            name and address): true non-matches.
        within_source_duplicates: a person has a second record, with another key, in the last
            source (the web shop).
    """

    typo: float
    nickname: float
    swapped_names: float
    missing: float
    formatting: float
    moved: float
    new_email: float
    lookalikes: float
    within_source_duplicates: float

    PRESETS: ClassVar[tuple[str, ...]] = ("easy", "default", "hard")

    def __post_init__(self) -> None:
        bad = [f"{k}={v!r}" for k, v in asdict(self).items() if not 0.0 <= v <= 1.0]
        if bad:
            raise ValueError(f"difficulty probabilities must be from 0 to 1: {', '.join(bad)}")

    @classmethod
    def preset(cls, name: str) -> Difficulty:
        """Return the preset ``name``: ``easy``, ``default`` or ``hard``.

        Raises:
            ValueError: ``name`` is not a preset; the message names the presets.
        """
        try:
            values = _PRESETS[name]
        except KeyError:
            raise ValueError(
                f"unknown difficulty {name!r}; accepted: {', '.join(cls.PRESETS)}"
            ) from None
        return cls(**values)

    def to_dict(self) -> dict[str, float]:
        """The probabilities by name."""
        return asdict(self)


_PRESETS: dict[str, dict[str, float]] = {
    "easy": {
        "typo": 0.02,
        "nickname": 0.02,
        "swapped_names": 0.0,
        "missing": 0.05,
        "formatting": 0.1,
        "moved": 0.05,
        "new_email": 0.03,
        "lookalikes": 0.02,
        "within_source_duplicates": 0.01,
    },
    "default": {
        "typo": 0.08,
        "nickname": 0.06,
        "swapped_names": 0.02,
        "missing": 0.15,
        "formatting": 0.3,
        "moved": 0.1,
        "new_email": 0.08,
        "lookalikes": 0.05,
        "within_source_duplicates": 0.03,
    },
    "hard": {
        "typo": 0.2,
        "nickname": 0.15,
        "swapped_names": 0.06,
        "missing": 0.3,
        "formatting": 0.6,
        "moved": 0.2,
        "new_email": 0.15,
        "lookalikes": 0.15,
        "within_source_duplicates": 0.08,
    },
}
