"""People for the ``customer`` entity: names, birth dates, addresses, e-mails and phones.

A :class:`Person` is the truth about one human being; :func:`render_person` writes what one source
record holds about them, with that record's :class:`~mdhub.testdata.noise.Style`. Every value is
written so that the hub's standardizers and rules accept it (phones parse, countries are known).
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import phonenumbers

from mdhub.testdata.names import (
    COUNTRIES,
    COUNTRY_WEIGHTS,
    FIRST_NAMES,
    LAST_NAMES,
    NICKNAMES,
    TAGS,
    City,
    Country,
)
from mdhub.testdata.noise import Style, misspell, pick, recase

__all__ = [
    "PERSON_ATTRIBUTES",
    "Address",
    "Person",
    "PersonFactory",
    "Phone",
    "render_person",
]

# The attributes a person has values for; a model's other attributes get generic values.
PERSON_ATTRIBUTES = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "street",
    "postal_code",
    "city",
    "country",
    "birth_date",
    "loyalty_tier",
    "lifetime_value",
    "tags",
)
ADDRESS_ATTRIBUTES = ("street", "postal_code", "city", "country")
_GB_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the letters GB inward codes use
_NL_LETTERS = "ABCDEGHJKLMNPRTVWXZ"
_TIERS = ("bronze", "silver", "gold", "platinum")
_ASCII = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "'": "", " ": "", "-": ""})


@dataclass(frozen=True, slots=True)
class Address:
    """Where a person lives."""

    country: Country
    city: City
    street_name: str
    street_kind: int  # index into the country's street kinds
    number: int
    postal_code: str


@dataclass(frozen=True, slots=True)
class Phone:
    """A valid phone number in the forms people write it."""

    country: str
    e164: str
    international: str  # "+1 202-555-0101"
    national: str  # "(202) 555-0101"


@dataclass(slots=True)
class Person:
    """One human being, with the history of their address and e-mail address."""

    entity_id: str
    gender: str
    first_name: str
    last_name: str
    birth_date: dt.date
    phone: Phone
    addresses: list[tuple[dt.datetime, Address]]  # (valid from, address), oldest first
    emails: list[tuple[dt.datetime, str]]  # (valid from, e-mail), oldest first
    alternate_email: str  # a second account's address
    extra: dict[str, Any] = field(default_factory=dict)  # loyalty, value, tags, other attributes

    @property
    def country(self) -> Country:
        return self.addresses[0][1].country


def ascii_name(text: str) -> str:
    """A name as e-mail local parts write it: lower-case ASCII letters only."""
    text = text.lower().translate(_ASCII)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and c.isalnum())


class PersonFactory:
    """Makes people (new ones and look-alikes of earlier ones) from one random generator.

    E-mail addresses and phone numbers are unique across everyone it makes.
    """

    def __init__(self, rng: random.Random, start: dt.datetime) -> None:
        self.rng = rng
        self.start = start
        self._emails: set[str] = set()
        self._phones: set[str] = set()
        self._country_codes = tuple(COUNTRY_WEIGHTS)
        self._country_weights = tuple(COUNTRY_WEIGHTS.values())

    # -- parts ---------------------------------------------------------------------------------

    def country(self) -> Country:
        code = self.rng.choices(self._country_codes, self._country_weights)[0]
        return COUNTRIES[code]

    def _language(self, country: Country) -> str:
        # one in ten people carries names from another of the languages
        if self.rng.random() < 0.1:
            return self.rng.choice(tuple(FIRST_NAMES))
        return country.language

    def first_name(self, language: str, gender: str) -> str:
        return self.rng.choice(FIRST_NAMES[language][gender])

    def birth_date(self, low: int = 1940, high: int = 2005) -> dt.date:
        first = dt.date(low, 1, 1).toordinal()
        last = dt.date(high, 12, 31).toordinal()
        return dt.date.fromordinal(self.rng.randint(first, last))

    def postal_code(self, country: Country, city: City) -> str:
        rng = self.rng
        if country.code == "GB":
            outward = rng.choice(city.postal)
            letters = rng.choice(_GB_INWARD_LETTERS) + rng.choice(_GB_INWARD_LETTERS)
            return f"{outward} {rng.randint(1, 9)}{letters}"
        low, high = city.postal
        assert isinstance(low, int) and isinstance(high, int)
        number = rng.randint(low, high)
        if country.code == "NL":
            letters = rng.choice(_NL_LETTERS) + rng.choice(_NL_LETTERS)
            return f"{number:04d} {letters}"
        return f"{number:05d}"

    def address(self, country: Country, city: City | None = None) -> Address:
        rng = self.rng
        city = city or rng.choice(country.cities)
        return Address(
            country=country,
            city=city,
            street_name=rng.choice(country.street_names),
            street_kind=rng.randrange(len(country.street_kinds)),
            # most house numbers are small; long American streets run into the thousands
            number=min(int(rng.paretovariate(1.2) * 3), 999)
            if rng.random() < 0.8
            else rng.randint(1, 2400 if country.code == "US" else 250),
            postal_code=self.postal_code(country, city),
        )

    def phone(self, country: Country, city: City) -> Phone:
        rng = self.rng
        for _ in range(50):
            if country.mobile_prefixes and rng.random() < 0.5:
                prefix = rng.choice(country.mobile_prefixes)
                length = country.national_length + (1 if country.code == "DE" else 0)
            else:
                prefix = city.area
                length = country.national_length
            rest = length - len(prefix)
            national = (
                prefix
                + str(rng.randint(2, 9))
                + "".join(str(rng.randint(0, 9)) for _ in range(rest - 1))
            )
            number = phonenumbers.parse(f"+{_CALLING[country.code]}{national}")
            if not phonenumbers.is_valid_number(number):
                continue
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            if e164 in self._phones:
                continue
            self._phones.add(e164)
            return Phone(
                country=country.code,
                e164=e164,
                international=phonenumbers.format_number(
                    number, phonenumbers.PhoneNumberFormat.INTERNATIONAL
                ),
                national=phonenumbers.format_number(
                    number, phonenumbers.PhoneNumberFormat.NATIONAL
                ),
            )
        raise RuntimeError(f"no valid phone number found for {country.code}")  # pragma: no cover

    def email(self, first: str, last: str, birth: dt.date, country: Country) -> str:
        rng = self.rng
        f, la = ascii_name(first) or "x", ascii_name(last) or "x"
        for attempt in range(100):
            local = pick(
                (
                    f"{f}.{la}",
                    f"{f}{la}",
                    f"{f[0]}.{la}",
                    f"{f}_{la}",
                    f"{f}.{la}{birth.year % 100:02d}",
                    f"{f}{birth.year}",
                    f"{la}.{f}",
                    f"{f[0]}{la}",
                ),
                rng.random(),
            )
            if attempt:  # taken: people add digits until the provider accepts one
                local += str(rng.randint(1, 99 if attempt < 10 else 9999))
            provider = rng.choice(country.providers) if rng.random() < 0.85 else "protonmail.com"
            address = f"{local}@{provider}"
            if address not in self._emails:
                self._emails.add(address)
                return address
        raise RuntimeError("no free e-mail address")  # pragma: no cover

    def extra(self) -> dict[str, Any]:
        rng = self.rng
        value = 0.0 if rng.random() < 0.08 else round(rng.lognormvariate(6.0, 1.3), 2)
        tier = _TIERS[(value >= 300) + (value >= 1500) + (value >= 6000)]
        tags = sorted(rng.sample(TAGS, k=pick((0, 1, 1, 2, 2, 3), rng.random())))
        return {"lifetime_value": value, "loyalty_tier": tier, "tags": tags}

    # -- people --------------------------------------------------------------------------------

    def person(self, entity_id: str) -> Person:
        """A new person."""
        rng = self.rng
        country = self.country()
        language = self._language(country)
        gender = rng.choice("mf")
        first = self.first_name(language, gender)
        last = rng.choice(LAST_NAMES[language])
        birth = self.birth_date()
        address = self.address(country)
        return Person(
            entity_id=entity_id,
            gender=gender,
            first_name=first,
            last_name=last,
            birth_date=birth,
            phone=self.phone(country, address.city),
            addresses=[(self.start, address)],
            emails=[(self.start, self.email(first, last, birth, country))],
            alternate_email=self.email(first, last, birth, country),
            extra=self.extra(),
        )

    def namesake(self, entity_id: str, of: Person) -> Person:
        """A different person with the same first and last name (maybe in the same city)."""
        rng = self.rng
        country = of.country if rng.random() < 0.7 else self.country()
        same_city = country is of.country and rng.random() < 0.5
        address = self.address(country, of.addresses[0][1].city if same_city else None)
        birth = self.birth_date()
        while birth == of.birth_date:  # pragma: no cover - one chance in 24,000
            birth = self.birth_date()
        return Person(
            entity_id=entity_id,
            gender=of.gender,
            first_name=of.first_name,
            last_name=of.last_name,
            birth_date=birth,
            phone=self.phone(country, address.city),
            addresses=[(self.start, address)],
            emails=[(self.start, self.email(of.first_name, of.last_name, birth, country))],
            alternate_email=self.email(of.first_name, of.last_name, birth, country),
            extra=self.extra(),
        )

    def household_member(self, entity_id: str, of: Person) -> Person:
        """Someone living with ``of``: same last name and address, other first name and birth."""
        rng = self.rng
        country = of.country
        gender = rng.choice("mf")
        language = country.language if rng.random() < 0.8 else rng.choice(tuple(FIRST_NAMES))
        first = of.first_name
        while first == of.first_name:
            first = self.first_name(language, gender)
        if rng.random() < 0.6:  # partner
            year = max(1940, min(2005, of.birth_date.year + rng.randint(-6, 6)))
            birth = self.birth_date(year, year)
        else:  # a grown-up child, or a parent
            year = of.birth_date.year + pick((-30, -26, 24, 28, 32), rng.random())
            birth = self.birth_date(max(1940, min(2005, year)), max(1940, min(2005, year)))
        while birth == of.birth_date:
            birth = self.birth_date()
        address = of.addresses[0][1]
        return Person(
            entity_id=entity_id,
            gender=gender,
            first_name=first,
            last_name=of.last_name,
            birth_date=birth,
            phone=self.phone(country, address.city),
            addresses=[(self.start, address)],
            emails=[(self.start, self.email(first, of.last_name, birth, country))],
            alternate_email=self.email(first, of.last_name, birth, country),
            extra=self.extra(),
        )

    def move(self, person: Person, when: dt.datetime) -> None:
        """``person`` moves house at ``when`` (mostly within their country)."""
        old = person.addresses[-1][1]
        new = self.address(old.country, old.city if self.rng.random() < 0.3 else None)
        person.addresses.append((when, new))

    def change_email(self, person: Person, when: dt.datetime) -> None:
        """``person`` takes a new e-mail address at ``when``."""
        address = self.email(person.first_name, person.last_name, person.birth_date, person.country)
        person.emails.append((when, address))


_CALLING = {"US": 1, "GB": 44, "DE": 49, "FR": 33, "NL": 31}


# -- rendering ---------------------------------------------------------------------------------


def street_text(address: Address, u: float | None) -> str:
    """The street and house number, plainly or (with a draw ``u``) as someone wrote it."""
    country = address.country
    full, short = country.street_kinds[address.street_kind]
    name, number = address.street_name, address.number
    variant = -1 if u is None else int(u * 5)
    kind = short if variant == 0 else full
    code = country.code
    if code in ("US", "GB"):
        text = f"{number} {name} {kind}"
    elif code == "FR":
        text = f"{number}, {kind} {name}" if variant == 4 else f"{number} {kind} {name}"
    else:  # DE, NL: the kind is part of the word, the number comes last
        joined = f"{name}{kind}"
        if variant == 4 and "ß" in joined:
            joined = joined.replace("ß", "ss")
        text = f"{joined} {number}"
    if variant == 1:
        return text.upper()
    if variant == 2:
        return text.lower()
    if variant == 3:
        return f"  {text.replace(' ', '  ', 1)} "
    return text


def postal_text(address: Address, u: float | None) -> str:
    code = address.postal_code
    if u is None:
        return code
    variant = int(u * 3)
    if variant == 0 and " " in code:
        return code.replace(" ", "")
    if variant == 1:
        return code.lower()
    return f" {code} "


def city_text(address: Address, u: float | None) -> str:
    city = address.city
    if u is None:
        return city.name
    variant = int(u * 3)
    if variant == 0 and city.alias:
        return city.alias
    if variant == 1:
        return city.name.upper()
    return city.name.lower() if variant == 2 else f"{city.name} "


def country_text(country: Country, u: float | None) -> str:
    if u is None:
        return country.code
    return pick((country.name, country.alpha3, country.code.lower(), f" {country.code} "), u)


def phone_text(phone: Phone, u: float | None, region: str | None) -> str:
    """The phone number as written; national forms only where the hub's default region reads them."""
    if u is None:
        return phone.international
    forms = [phone.e164, phone.international.replace(" ", ".").replace("-", ".")]
    if phone.country != "US":
        code, rest = phone.international.split(" ", 1)
        forms.append(f"{code} (0){rest}")
        forms.append(f"{code}-{rest.replace(' ', '-')}")
    else:
        forms.append(phone.international.replace("-", " "))
    if region == phone.country:
        forms.append(phone.national)
    if region is not None and region != "US" and _idd_reads(region):
        forms.append("00" + phone.international[1:])
    return pick(forms, u)


@lru_cache(maxsize=32)
def _idd_reads(region: str) -> bool:
    """Whether numbers written with the 00 international prefix parse in ``region``."""
    try:
        phonenumbers.parse("0049 30 1234567", region)
    except phonenumbers.NumberParseException:
        return False
    return True


def email_text(address: str, u: float | None) -> str:
    if u is None:
        return address
    variant = int(u * 3)
    if variant == 0:
        return address.upper()
    if variant == 1:
        local, domain = address.split("@", 1)
        parts = ".".join(p.capitalize() for p in local.split("."))
        return f"{parts}@{domain.capitalize()}"
    return f" {address} "


def name_text(name: str, u: float | None) -> str:
    return name if u is None else recase(name, u)


def render_person(
    person: Person,
    style: Style,
    address: Address,
    email: str,
    region: str | None,
    max_lengths: dict[str, int | None],
) -> dict[str, Any]:
    """What one source record holds about ``person``: the carried attributes, styled.

    ``address`` and ``email`` are the ones this record knows (it may not have heard of a move).
    """
    out: dict[str, Any] = {}
    first, last = person.first_name, person.last_name
    if style.nickname is not None and first in NICKNAMES:
        first = pick(NICKNAMES[first], style.nickname)
    if "first_name" in style.typos:
        first = misspell(first, style.typos["first_name"], max_length=max_lengths["first_name"])
    if "last_name" in style.typos:
        last = misspell(last, style.typos["last_name"], max_length=max_lengths["last_name"])
    if style.swapped:
        first, last = last, first
    formats = style.formats
    for name in style.carried:
        u = formats.get(name)
        if name == "first_name":
            out[name] = name_text(first, u)
        elif name == "last_name":
            out[name] = name_text(last, u)
        elif name == "email":
            out[name] = email_text(person.alternate_email if style.alternate else email, u)
        elif name == "phone":
            out[name] = phone_text(person.phone, u, region)
        elif name == "street":
            text = street_text(address, u)
            if name in style.typos:
                text = misspell(text, style.typos[name], max_length=max_lengths[name])
            out[name] = text
        elif name == "postal_code":
            out[name] = postal_text(address, u)
        elif name == "city":
            text = city_text(address, u)
            if name in style.typos:
                text = misspell(text, style.typos[name], max_length=max_lengths[name])
            out[name] = text
        elif name == "country":
            out[name] = country_text(address.country, u)
        elif name == "birth_date":
            out[name] = person.birth_date
        elif name in person.extra:
            value = person.extra[name]
            if value is None:
                continue
            if isinstance(value, list):
                if not value:
                    continue  # an empty list is an absent value
                value = list(value)
            out[name] = value
    return out
