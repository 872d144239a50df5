"""Valid random values for any attribute of an entity model, from its type and rules.

Used for entity types other than ``customer`` (and for attributes a person has no value for). A
value respects the attribute's type, ``enum``, ``pattern`` (the common subset of regular
expressions: classes, ranges, escapes, groups, alternatives, quantifiers), ``min_length`` /
``max_length`` and ``minimum`` / ``maximum``; attribute names such as ``name``, ``price`` or
``currency`` pick plausible values where the rules allow them.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
import string
from collections.abc import Callable
from typing import Any

from mdhub.domain.model import AttributeSpec, AttrType, Standardizer
from mdhub.domain.validation import check_attribute
from mdhub.testdata.names import COUNTRIES, TAGS

__all__ = ["ValueFactory", "is_free_text", "sample_pattern"]

_ADJECTIVES = (
    "Classic", "Premium", "Compact", "Deluxe", "Essential", "Lightweight", "Heavy-Duty",
    "Vintage", "Modern", "Eco", "Smart", "Ultra", "Pro", "Everyday", "Travel", "Outdoor",
)  # fmt: skip
_MATERIALS = (
    "Cotton", "Steel", "Bamboo", "Leather", "Ceramic", "Oak", "Wool", "Glass", "Aluminium",
    "Linen", "Silicone", "Copper",
)  # fmt: skip
_NOUNS = (
    "Shirt", "Kettle", "Backpack", "Lamp", "Mug", "Chair", "Blanket", "Bottle", "Jacket",
    "Notebook", "Headphones", "Desk", "Pan", "Scarf", "Watch", "Umbrella", "Speaker", "Vase",
)  # fmt: skip
_BRANDS = (
    "Northwind", "Brightwell", "Aurora Works", "Bluefield", "Copperleaf", "Nordlicht",
    "Helvetia Home", "Maison Claire", "Oakridge", "Tidewater", "Kestrel", "Vandermeer",
)  # fmt: skip
_CATEGORIES = (
    "Apparel", "Kitchen", "Outdoor", "Electronics", "Home", "Office", "Travel", "Garden",
    "Sports", "Accessories",
)  # fmt: skip
_WORDS = (
    "alpha", "harbor", "meadow", "quartz", "signal", "canvas", "ember", "falcon", "granite",
    "horizon", "island", "juniper", "lantern", "marble", "nectar", "orbit", "pepper", "river",
    "summit", "timber", "velvet", "willow", "zephyr", "cobalt",
)  # fmt: skip
_SENTENCES = (
    "Built to last and easy to care for.",
    "A customer favourite since its launch.",
    "Designed in Europe, made with recycled materials.",
    "Comes with a two-year warranty.",
    "Fits most standard sizes.",
    "Machine washable at 30 degrees.",
    "Ships in plastic-free packaging.",
)
_COLOURS = ("black", "white", "navy", "red", "green", "grey", "sand", "olive")
_CURRENCIES = ("EUR", "USD", "GBP", "CHF", "SEK")
_ALNUM = string.ascii_letters + string.digits
_PRICE_ENDINGS = (0.99, 0.49, 0.95, 0.0, 0.5)


class _Unsupported(Exception):
    """A pattern construct the sampler does not handle (look-arounds, back-references...)."""


# -- patterns -------------------------------------------------------------------------------------

_Node = tuple[Any, ...]


class _PatternParser:
    """Parses the common subset of regular expressions into a tree the sampler walks."""

    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.i = 0

    def parse(self) -> _Node:
        node = self._alternatives()
        if self.i != len(self.text):
            raise _Unsupported(self.text[self.i :])
        return node

    def _peek(self) -> str | None:
        return self.text[self.i] if self.i < len(self.text) else None

    def _alternatives(self) -> _Node:
        options = [self._sequence()]
        while self._peek() == "|":
            self.i += 1
            options.append(self._sequence())
        return ("alt", options) if len(options) > 1 else options[0]

    def _sequence(self) -> _Node:
        items: list[_Node] = []
        while (char := self._peek()) is not None and char not in "|)":
            atom = self._atom()
            items.append(self._quantified(atom))
        return ("seq", items)

    def _quantified(self, atom: _Node) -> _Node:
        char = self._peek()
        bounds: tuple[int, int] | None = None
        if char == "*":
            bounds = (0, 3)
        elif char == "+":
            bounds = (1, 4)
        elif char == "?":
            bounds = (0, 1)
        elif char == "{":
            end = self.text.find("}", self.i)
            body = self.text[self.i + 1 : end] if end > 0 else ""
            found = re.fullmatch(r"(\d+)(?:(,)(\d*))?", body)
            if found is None:
                return atom  # a literal "{"
            low = int(found.group(1))
            high = low if not found.group(2) else int(found.group(3) or low + 3)
            bounds = (low, high)
            self.i = end
        if bounds is None:
            return atom
        self.i += 1
        if self._peek() in ("?", "+"):  # lazy or possessive: the same strings
            self.i += 1
        return ("rep", atom, *bounds)

    def _atom(self) -> _Node:
        char = self.text[self.i]
        self.i += 1
        if char == "(":
            if self.text.startswith("?:", self.i):
                self.i += 2
            elif self._peek() == "?":
                raise _Unsupported("(?")
            inner = self._alternatives()
            if self._peek() != ")":
                raise _Unsupported("unclosed group")
            self.i += 1
            return inner
        if char == "[":
            return ("set", self._class())
        if char == "\\":
            return ("set", self._escape(in_class=False))
        if char == ".":
            return ("set", _ALNUM)
        if char in "^$":
            return ("seq", [])
        return ("set", char)

    def _escape(self, *, in_class: bool) -> str:
        char = self._peek()
        if char is None:
            raise _Unsupported("trailing backslash")
        self.i += 1
        classes = {
            "d": string.digits,
            "w": _ALNUM + "_",
            "s": " ",
            "D": string.ascii_letters,
            "W": "-",
            "S": _ALNUM,
        }
        if char in classes:
            return classes[char]
        if char.isdigit() or (char in "bBAZz" and not in_class):
            raise _Unsupported(f"\\{char}")
        return {"t": "\t", "n": "\n"}.get(char, char)

    def _class(self) -> str:
        negated = self._peek() == "^"
        if negated:
            self.i += 1
        members: list[str] = []
        first = True
        while True:
            char = self._peek()
            if char is None:
                raise _Unsupported("unclosed class")
            if char == "]" and not first:
                self.i += 1
                break
            first = False
            self.i += 1
            if char == "\\":
                members.append(self._escape(in_class=True))
                continue
            if self._peek() == "-" and self.i + 1 < len(self.text) and self.text[self.i + 1] != "]":
                end = self.text[self.i + 1]
                self.i += 2
                members.append("".join(chr(c) for c in range(ord(char), ord(end) + 1)))
                continue
            members.append(char)
        chars = "".join(members)
        if negated:
            chars = "".join(c for c in _ALNUM if c not in chars)
        elif " " in chars and chars.strip():
            chars = chars.replace(" ", "")  # spaces at the ends would be trimmed: avoid them
        if not chars:
            raise _Unsupported("empty class")
        return chars


def _sample(node: _Node, rng: random.Random, out: list[str]) -> None:
    kind = node[0]
    if kind == "set":
        out.append(rng.choice(node[1]))
    elif kind == "seq":
        for item in node[1]:
            _sample(item, rng, out)
    elif kind == "alt":
        _sample(rng.choice(node[1]), rng, out)
    else:  # rep
        for _ in range(rng.randint(node[2], node[3])):
            _sample(node[1], rng, out)


def sample_pattern(pattern: str, rng: random.Random, tries: int = 20) -> str | None:
    """A string that ``re.fullmatch(pattern, ...)`` accepts, or None for an unsupported pattern."""
    try:
        tree = _PatternParser(pattern).parse()
        compiled = re.compile(pattern)
    except (_Unsupported, re.error):
        return None
    for _ in range(tries):
        out: list[str] = []
        _sample(tree, rng, out)
        text = "".join(out)
        if text == " ".join(text.split()) and compiled.fullmatch(text):
            return text
    return None


# -- values ---------------------------------------------------------------------------------------


def is_free_text(spec: AttributeSpec) -> bool:
    """A string a person types freely (no enum, pattern or standardizer): typos can happen."""
    return (
        spec.type is AttrType.STRING
        and spec.enum is None
        and spec.pattern is None
        and not spec.standardizers
    )


def _has(name: str, *words: str) -> bool:
    return any(word in name for word in words)


class ValueFactory:
    """Valid random values per attribute; identifier-like strings are unique per attribute."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._used: dict[str, set[str]] = {}

    def value(self, spec: AttributeSpec) -> Any:
        """A valid value for ``spec`` (as a Python value: dates as dates, lists as lists).

        Returns None when no valid value could be made (an unsupported pattern, say).
        """
        kind = spec.type
        if kind is AttrType.STRING:
            return self._string(spec)
        if kind is AttrType.INTEGER:
            return self._integer(spec)
        if kind is AttrType.NUMBER:
            return self._number(spec)
        if kind is AttrType.BOOLEAN:
            return self.rng.random() < 0.5
        if kind is AttrType.DATE:
            return self._date(spec)
        if kind is AttrType.TIMESTAMP:
            start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
            return start + dt.timedelta(seconds=self.rng.randrange(2 * 365 * 86400))
        return self._list(spec)

    def changed(self, spec: AttributeSpec, old: Any) -> Any:
        """A later value of the attribute (a price change, a new description)."""
        if spec.type in (AttrType.INTEGER, AttrType.NUMBER) and isinstance(old, int | float):
            factor = 1 + self.rng.uniform(-0.15, 0.25)
            new: float = old * factor
            if spec.minimum is not None:
                new = max(new, spec.minimum)
            if spec.maximum is not None:
                new = min(new, spec.maximum)
            if spec.type is AttrType.INTEGER:
                return int(new) if self._fits(spec, int(new)) else old
            return round(new, 2) if self._fits(spec, round(new, 2)) else old
        value = self.value(spec)
        return old if value is None else value

    # -- by type ---------------------------------------------------------------------------------

    def _fits(self, spec: AttributeSpec, value: Any) -> bool:
        typed = tuple(value) if isinstance(value, list) else value
        return not check_attribute(spec, typed)

    def _string(self, spec: AttributeSpec) -> str | None:
        rng = self.rng
        if spec.enum is not None:
            return rng.choice(spec.enum)
        name = spec.name.lower()
        for _ in range(10):
            candidate = self._standardized(spec) or self._hinted(name)
            candidate = self._fit_length(spec, candidate)
            if self._fits(spec, candidate) and self._unique(spec, name, candidate):
                return candidate
        if spec.pattern is not None:
            for _ in range(10):
                sampled = sample_pattern(spec.pattern, rng)
                if sampled is None:
                    return None
                if self._fits(spec, sampled) and self._unique(spec, name, sampled):
                    return sampled
        return None

    def _unique(self, spec: AttributeSpec, name: str, value: str) -> bool:
        if not _identifier(name):
            return True
        used = self._used.setdefault(spec.name, set())
        if value in used:
            return False
        used.add(value)
        return True

    def _standardized(self, spec: AttributeSpec) -> str | None:
        rng = self.rng
        kinds = spec.standardizers
        if Standardizer.EMAIL in kinds:
            return f"{rng.choice(_WORDS)}.{rng.choice(_WORDS)}{rng.randint(1, 999)}@example.com"
        if Standardizer.PHONE_E164 in kinds:
            area = rng.choice(("202", "212", "312", "415"))
            return f"+1{area}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        if Standardizer.COUNTRY_ISO2 in kinds:
            return rng.choice(tuple(COUNTRIES))
        return None

    def _hinted(self, name: str) -> str:
        rng = self.rng
        hints: list[tuple[tuple[str, ...], Callable[[], str]]] = [
            (("sku", "code", "_id", "number", "ref"), self._identifier_text),
            (("currency",), lambda: rng.choice(_CURRENCIES)),
            (("email",), lambda: f"{rng.choice(_WORDS)}{rng.randint(1, 999)}@example.com"),
            (("country",), lambda: rng.choice(tuple(COUNTRIES))),
            (("city",), lambda: rng.choice(rng.choice(tuple(COUNTRIES.values())).cities).name),
            (("url", "website", "link"), lambda: f"https://www.example.com/{rng.choice(_WORDS)}"),
            (("colour", "color"), lambda: rng.choice(_COLOURS)),
            (("brand", "manufacturer", "vendor", "supplier"), lambda: rng.choice(_BRANDS)),
            (("category", "group", "type", "segment"), lambda: rng.choice(_CATEGORIES)),
            (("description", "text", "note", "comment", "summary"), self._description),
            (("name", "title", "label"), self._product_name),
        ]
        for words, make in hints:
            if _has(name, *words):
                return make()
        return " ".join(rng.sample(_WORDS, k=rng.randint(1, 3)))

    def _identifier_text(self) -> str:
        rng = self.rng
        letters = rng.choice(string.ascii_uppercase) + rng.choice(string.ascii_uppercase)
        return f"{letters}-{rng.randint(0, 999999):06d}"

    def _product_name(self) -> str:
        rng = self.rng
        name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_MATERIALS)} {rng.choice(_NOUNS)}"
        return f"{name}, {rng.choice(_COLOURS)}" if rng.random() < 0.3 else name

    def _description(self) -> str:
        rng = self.rng
        noun = rng.choice(_NOUNS).lower()
        return f"A {rng.choice(_MATERIALS).lower()} {noun}. " + " ".join(
            rng.sample(_SENTENCES, k=rng.randint(1, 3))
        )

    def _fit_length(self, spec: AttributeSpec, text: str) -> str:
        if spec.max_length is not None and len(text) > spec.max_length:
            text = text[: spec.max_length].strip()
        if spec.min_length is not None and len(text) < spec.min_length:
            text += "".join(
                self.rng.choice(string.ascii_lowercase) for _ in range(spec.min_length - len(text))
            )
        return text

    def _integer(self, spec: AttributeSpec) -> int | None:
        name = spec.name.lower()
        low, high = 0, 1000
        if _has(name, "weight", "gram"):
            low, high = 50, 5000
        elif _has(name, "year"):
            low, high = 1990, 2025
        elif _has(name, "quantity", "stock", "count"):
            low, high = 0, 500
        bounds = _clamp(spec, low, high)
        lo, hi = math.ceil(bounds[0]), math.floor(bounds[1])
        if lo > hi:
            return None
        return self.rng.randint(lo, hi)

    def _number(self, spec: AttributeSpec) -> float | None:
        rng = self.rng
        name = spec.name.lower()
        if _has(name, "price", "amount", "cost", "fee"):
            value = round(rng.randint(1, 499) + rng.choice(_PRICE_ENDINGS), 2)
            if self._fits(spec, value):
                return value
        low, high = _clamp(spec, 0.0, 1000.0)
        if low > high:
            return None
        value = round(rng.uniform(low, high), 2)
        return value if self._fits(spec, value) else low

    def _date(self, spec: AttributeSpec) -> dt.date | None:
        name = spec.name.lower()
        low, high = 1990, 2025
        if _has(name, "birth"):
            low, high = 1940, 2005
        low, high = (int(v) for v in _clamp(spec, low, high))
        low, high = max(low, 1), min(high, 9999)
        if low > high:
            return None
        first = dt.date(low, 1, 1).toordinal()
        last = dt.date(high, 12, 31).toordinal()
        return dt.date.fromordinal(self.rng.randint(first, last))

    def _list(self, spec: AttributeSpec) -> list[str] | None:
        low = spec.min_length or 1
        high = max(low, min(spec.max_length if spec.max_length is not None else 3, 3))
        pool = TAGS if len(TAGS) >= high else TAGS + _WORDS
        if high > len(pool) or low > high:
            return None
        return sorted(self.rng.sample(pool, k=self.rng.randint(low, high)))


def _identifier(name: str) -> bool:
    return _has(name, "sku", "code", "_id", "number", "ref") and not _has(name, "postal", "zip")


def _clamp(spec: AttributeSpec, low: float, high: float) -> tuple[float, float]:
    """A default range moved inside the attribute's minimum and maximum."""
    if spec.minimum is not None:
        low = max(low, spec.minimum)
        high = max(high, low)
    if spec.maximum is not None:
        high = min(high, spec.maximum)
        low = min(low, high) if spec.minimum is None else low
    return low, high
