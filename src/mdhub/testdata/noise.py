"""The variations a source record's values go through: typing errors, case and spacing.

A record's variations are drawn once (a :class:`Style`) and applied to every version it sends, so a
typo a source system holds stays in its later versions, as it would in the real system.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

__all__ = ["Style", "Typo", "TypoKind", "misspell", "pick", "recase"]

T = TypeVar("T")

# Neighbouring keys on a QWERTY keyboard: the letters a slipping finger types instead.
_NEIGHBOURS = {
    "q": "wa", "w": "qeas", "e": "wrds", "r": "etdf", "t": "ryfg", "y": "tugh", "u": "yihj",
    "i": "uojk", "o": "ipkl", "p": "ol", "a": "qwsz", "s": "awedxz", "d": "serfcx",
    "f": "drtgvc", "g": "ftyhbv", "h": "gyujnb", "j": "huikmn", "k": "jiolm", "l": "kop",
    "z": "asx", "x": "zsdc", "c": "xdfv", "v": "cfgb", "b": "vghn", "n": "bhjm", "m": "njk",
}  # fmt: skip


class TypoKind(StrEnum):
    """The one-edit typing errors."""

    TRANSPOSITION = "transposition"
    DELETION = "deletion"
    SUBSTITUTION = "substitution"
    INSERTION = "insertion"


@dataclass(frozen=True, slots=True)
class Typo:
    """One typing error: its kind, where it happens and which key was hit (both from 0 to 1)."""

    kind: TypoKind
    at: float
    key: float

    @classmethod
    def draw(cls, rng: random.Random) -> Typo:
        """A random typing error."""
        kinds = tuple(TypoKind)
        return cls(kinds[int(rng.random() * len(kinds))], rng.random(), rng.random())


@dataclass(frozen=True, slots=True)
class Style:
    """How one source record writes its values, drawn once for all its versions.

    Attributes:
        carried: the attributes the record holds (after the ones left empty were dropped).
        typos: attribute -> its typing error.
        formats: attribute -> a draw from 0 to 1 choosing how the value is written (absent:
            the plain form).
        nickname: a draw choosing the nickname the record uses, or None for the given name.
        swapped: first and last name are swapped.
        alternate: the record uses the person's other e-mail address (a second account).
    """

    carried: tuple[str, ...]
    typos: Mapping[str, Typo] = field(default_factory=dict)
    formats: Mapping[str, float] = field(default_factory=dict)
    nickname: float | None = None
    swapped: bool = False
    alternate: bool = False


def pick(options: Sequence[T], u: float) -> T:
    """The option a draw ``u`` (from 0 to 1) chooses."""
    return options[min(int(u * len(options)), len(options) - 1)]


def _neighbour(char: str, u: float) -> str:
    lower = char.lower()
    near = _NEIGHBOURS.get(lower, "e")
    out = pick(near, u)
    return out.upper() if char.isupper() else out


def misspell(text: str, typo: Typo, *, min_length: int = 2, max_length: int | None = None) -> str:
    """``text`` with one typing error among its letters; unchanged when it is too short.

    The result keeps at least ``min_length`` characters (and two letters) and at most
    ``max_length``; a transposition of two equal letters becomes a substitution, so the result
    always differs from a text with three or more letters.
    """
    letters = [i for i, c in enumerate(text) if c.isalpha()]
    if len(letters) < 3:
        return text
    kind = typo.kind
    if kind is TypoKind.DELETION and len(text) - 1 < max(min_length, 2):
        kind = TypoKind.SUBSTITUTION
    if kind is TypoKind.INSERTION and max_length is not None and len(text) + 1 > max_length:
        kind = TypoKind.SUBSTITUTION
    if kind is TypoKind.TRANSPOSITION:
        pairs = [
            i
            for i in letters
            if i + 1 < len(text)
            and text[i + 1].isalpha()
            and text[i].lower() != text[i + 1].lower()
        ]
        if pairs:
            i = pick(pairs, typo.at)
            # keep the word's capitalisation where it was: "Jonh", not "oJhn"
            first, second = text[i + 1], text[i]
            if text[i].isupper() != text[i + 1].isupper():
                first = first.upper() if text[i].isupper() else first.lower()
                second = second.upper() if text[i + 1].isupper() else second.lower()
            return text[:i] + first + second + text[i + 2 :]
        kind = TypoKind.SUBSTITUTION
    i = pick(letters, typo.at)
    if kind is TypoKind.DELETION:
        out = text[:i] + text[i + 1 :]
        # a capital letter deleted at a word's start: the next one takes its place
        if text[i].isupper() and out[i : i + 1].isalpha():
            out = out[:i] + out[i].upper() + out[i + 1 :]
        return out
    if kind is TypoKind.INSERTION:
        extra = text[i].lower() if typo.key < 0.5 else _neighbour(text[i].lower(), typo.key * 2 - 1)
        return text[: i + 1] + extra + text[i + 1 :]
    replacement = _neighbour(text[i], typo.key)
    if replacement == text[i]:  # pragma: no cover - neighbours never include the key itself
        replacement = "x"
    return text[:i] + replacement + text[i + 1 :]


def recase(text: str, u: float) -> str:
    """``text`` as someone might type it: upper or lower case, or with stray spaces."""
    variant = int(u * 4)
    if variant == 0:
        return text.upper()
    if variant == 1:
        return text.lower()
    if variant == 2:
        return f" {text}  "
    return text.replace(" ", "  ", 1) + " " if " " in text else f"{text} "
