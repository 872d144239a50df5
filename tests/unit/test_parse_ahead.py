"""Phone numbers parsed ahead in a helper process (``mdhub.stream.ahead``) and the phone cache.

The helper only fills the cache the pipeline's standardizers read: its answers must be exactly
what the worker would have computed, and the worker must go on without it when it is gone.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdhub.domain.standardize import PhoneCache, parse_phone
from mdhub.modelfile import load_model
from mdhub.ops.evaluate import encode_records
from mdhub.serde.catalog import SchemaCatalog
from mdhub.serde.mapping import change_from_avro
from mdhub.stream.ahead import MAX_INPUT_BYTES, ParseAhead, phone_entities
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
    helper = ParseAhead(MODEL, SCHEMAS, cache)
    try:
        yield helper, cache
    finally:
        helper.close()


def _collect_all(helper: ParseAhead, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while helper._in_flight or helper._waiting:
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


def test_the_helper_answers_every_phone_number_of_the_batch_as_parse_phone_would(
    ahead: tuple[ParseAhead, PhoneCache], changes: list[bytes]
) -> None:
    helper, cache = ahead
    helper.submit("customer", changes)
    _collect_all(helper)
    answered = dict(cache._answers)
    assert helper.answers == len(answered) > 0
    assert {text for text, _ in answered} == _phones(changes)
    assert all(parse_phone(*key) == answer for key, answer in answered.items())
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


def test_only_entity_types_with_a_phone_standardizer_need_the_helper() -> None:
    model = load_model(MODEL)
    assert phone_entities(model.entities.values()) == ["customer"]


def test_large_inputs_are_left_to_the_main_thread(ahead: tuple[ParseAhead, PhoneCache]) -> None:
    helper, _ = ahead
    helper.submit("customer", [b"x" * (MAX_INPUT_BYTES + 1)])
    assert helper.pid is None  # nothing to send: not even started
    assert not helper._waiting
