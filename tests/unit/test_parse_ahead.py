"""Inputs prepared ahead in a helper process (``mdhub.stream.ahead``), and the phone cache.

The helper's answers (phone numbers, match keys) must be exactly what the worker would have
computed from the same input, and the worker must go on without it when it is gone.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mdhub.domain.resolve import Resolver
from mdhub.domain.standardize import PhoneCache, apply_standardizers, parse_phone
from mdhub.domain.validation import standardize, validate_change
from mdhub.modelfile import load_model
from mdhub.ops.evaluate import encode_records
from mdhub.serde.catalog import SchemaCatalog
from mdhub.serde.mapping import change_from_avro
from mdhub.stream.ahead import CHUNK_BYTES, MAX_INPUT_BYTES, ParseAhead, _chunks, ahead_entities
from mdhub.testdata import Difficulty, generate

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "config" / "model.yaml"
SCHEMAS = ROOT / "schemas"


# -- the cache ---------------------------------------------------------------------------------


def test_the_cache_answers_like_parse_phone_and_counts_what_it_parsed() -> None:
    cache = PhoneCache()
    assert cache.standardize("+49 30 1234567", None) == ("+49301234567", None)
    assert cache.standardize("+49 30 1234567", None) == parse_phone("+49 30 1234567", None)
    assert cache.standardize("call me", None)[0] is None
    assert cache.parsed == 2  # the second look-up was a hit


def test_the_cache_keeps_the_most_recently_used_inputs() -> None:
    cache = PhoneCache(size=2)
    cache.standardize("+49 30 1111111", None)
    cache.standardize("+49 30 2222222", None)
    cache.standardize("+49 30 1111111", None)  # used again: the other one is the oldest now
    cache.standardize("+49 30 3333333", None)
    assert len(cache) == 2
    parsed = cache.parsed
    cache.standardize("+49 30 1111111", None)
    assert cache.parsed == parsed  # kept
    cache.standardize("+49 30 2222222", None)
    assert cache.parsed == parsed + 1  # dropped, parsed again


def test_answers_added_from_elsewhere_are_used_without_parsing() -> None:
    cache = PhoneCache()
    cache.add([(("+49 30 1234567", None), ("+49301234567", None))])
    assert cache.standardize("+49 30 1234567", None) == ("+49301234567", None)
    assert cache.parsed == 0


def test_a_helper_cache_hands_over_what_it_computed_once() -> None:
    cache = PhoneCache()
    cache.standardize("+49 30 1111111", None)  # before keep_computed: not noted
    cache.keep_computed()
    cache.standardize("+49 30 1111111", None)  # a hit: nothing computed
    cache.standardize("+49 30 2222222", None)
    assert cache.take_computed() == [(("+49 30 2222222", None), ("+49302222222", None))]
    assert cache.take_computed() == []


# -- the helper process ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def changes() -> list[bytes]:
    catalog = SchemaCatalog.load(SCHEMAS)
    entity = load_model(MODEL).entity("customer")
    records = generate(entity, 300, Difficulty.preset("hard"), 7).records
    return [value for _, value in encode_records(entity, catalog, records)]


@pytest.fixture
def ahead() -> Iterator[tuple[ParseAhead, PhoneCache]]:
    cache = PhoneCache()
    helper = ParseAhead(load_model(MODEL), SchemaCatalog.load(SCHEMAS), SCHEMAS, cache)
    try:
        yield helper, cache
    finally:
        helper.close()


def _collect_all(helper: ParseAhead, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while helper._sent or helper._waiting:
        assert time.monotonic() < deadline, "the helper did not answer"
        helper.collect()
        time.sleep(0.005)


def _phones(changes: list[bytes]) -> set[str]:
    codec = SchemaCatalog.load(SCHEMAS).codec("mdhub.customer.CandidateChange")
    found = set()
    for value in changes:
        phone = change_from_avro(codec.decode(value)).attributes.get("phone")
        if isinstance(phone, str) and phone.strip():
            found.add(" ".join(phone.split()))
    return found


@pytest.fixture
def answered(
    ahead: tuple[ParseAhead, PhoneCache], changes: list[bytes]
) -> tuple[ParseAhead, PhoneCache]:
    """The helper once it has answered for every one of ``changes``."""
    helper, _ = ahead
    helper.submit("customer", changes)
    _collect_all(helper)
    return ahead


def test_the_helper_answers_every_phone_number_of_the_batch_as_parse_phone_would(
    answered: tuple[ParseAhead, PhoneCache], changes: list[bytes]
) -> None:
    helper, cache = answered
    phones = dict(cache._answers)
    assert helper.answers == len(phones) > 0
    assert {text for text, _ in phones} == _phones(changes)
    assert all(parse_phone(*key) == answer for key, answer in phones.items())
    assert cache.parsed == 0  # nothing was parsed in this process


def test_inputs_that_do_not_decode_do_not_stop_the_helper(
    ahead: tuple[ParseAhead, PhoneCache], changes: list[bytes]
) -> None:
    helper, cache = ahead
    helper.submit("customer", [b"\x00not avro", b"", *changes[:20]])
    _collect_all(helper)
    assert helper.answers > 0
    assert {text for text, _ in cache._answers} == _phones(changes[:20])


def test_without_its_helper_the_worker_goes_on_and_says_so(
    ahead: tuple[ParseAhead, PhoneCache],
    changes: list[bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    helper, cache = ahead
    helper.submit("customer", changes[:10])
    _collect_all(helper)
    assert helper.pid is not None
    os.kill(helper.pid, 9)
    time.sleep(0.5)
    with caplog.at_level(logging.WARNING, logger="mdhub.stream.ahead"):
        helper.submit("customer", changes)
        for _ in range(50):
            helper.collect()
            time.sleep(0.01)
    assert "not used any more" in caplog.text
    assert helper.pid is None
    answers = helper.answers
    helper.submit("customer", changes)  # refused quietly from now on
    helper.collect()
    assert helper.answers == answers
    assert cache.standardize("+49 30 1234567", None) == ("+49301234567", None)


def test_close_stops_the_helper(ahead: tuple[ParseAhead, PhoneCache], changes: list[bytes]) -> None:
    helper, _ = ahead
    helper.submit("customer", changes[:5])
    pid = helper.pid
    assert pid is not None
    helper.close()
    assert helper.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_helper_has_work_for_entity_types_with_phones_or_matching() -> None:
    customer = load_model(MODEL).entity("customer")
    no_phones = {
        name: replace(spec, standardizers=()) if name == "phone" else spec
        for name, spec in customer.attributes.items()
    }
    assert ahead_entities([customer]) == ["customer"]
    assert ahead_entities([replace(customer, matching=None)]) == ["customer"]  # its phones
    assert ahead_entities([replace(customer, attributes=no_phones)]) == ["customer"]  # matching
    assert ahead_entities([replace(customer, matching=None, attributes=no_phones)]) == []


def test_the_helper_gives_each_valid_change_the_match_keys_the_resolver_computes(
    answered: tuple[ParseAhead, PhoneCache], changes: list[bytes]
) -> None:
    helper, _ = answered
    entity = load_model(MODEL).entity("customer")
    codec = SchemaCatalog.load(SCHEMAS).codec("mdhub.customer.CandidateChange")
    resolver = Resolver(entity)
    checked = 0
    for value in changes:
        change, problems = apply_standardizers(
            entity, standardize(change_from_avro(codec.decode(value)))
        )
        if problems or validate_change(entity, change):
            continue  # rejected before resolving: its keys are never asked for
        assert helper.keys_for(value) == resolver._features(change)
        checked += 1
    assert checked > len(changes) // 2
    assert helper.keys_used == checked
    assert helper.keys_for(changes[0]) is None  # each answer is taken once


def test_a_helper_with_other_schemas_refuses_and_the_worker_goes_on(
    tmp_path: Path, changes: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    other = tmp_path / "schemas"
    other.mkdir()
    for path in SCHEMAS.glob("*.avsc"):  # the current schemas, without the archived ones
        (other / path.name).write_bytes(path.read_bytes())
    helper = ParseAhead(load_model(MODEL), SchemaCatalog.load(SCHEMAS), other, PhoneCache())
    try:
        with caplog.at_level(logging.WARNING, logger="mdhub.stream.ahead"):
            helper.submit("customer", changes[:5])
            deadline = time.monotonic() + 60
            while helper.pid is not None and time.monotonic() < deadline:
                helper.collect()
                time.sleep(0.01)
        assert "schemas in" in caplog.text and "changed since the worker started" in caplog.text
        assert helper.keys_for(changes[0]) is None
    finally:
        helper.close()


def test_requests_stay_small_enough_for_the_pipe() -> None:
    values = [b"a" * 900] * 40 + [b"b" * MAX_INPUT_BYTES] * 3 + [b"c"] * 70
    chunks = list(_chunks(values))
    assert [v for chunk in chunks for v in chunk] == values  # all of them, in order
    assert all(sum(map(len, chunk)) <= CHUNK_BYTES and len(chunk) <= 32 for chunk in chunks)


def test_large_inputs_are_left_to_the_main_thread(ahead: tuple[ParseAhead, PhoneCache]) -> None:
    helper, _ = ahead
    helper.submit("customer", [b"x" * (MAX_INPUT_BYTES + 1)])
    assert helper.pid is None  # nothing to send: not even started
    assert not helper._waiting
