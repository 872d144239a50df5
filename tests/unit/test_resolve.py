"""Identity resolution through the real pipeline, in memory: matching, merges, splits, stewardship."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mdhub.domain.commands import Action, StewardCommand
from mdhub.domain.model import HubModel
from mdhub.domain.records import CandidateChange, GoldenStatus, LinkMethod, Op
from mdhub.domain.resolve import Summary
from mdhub.modelfile import load_model
from mdhub.serde.catalog import SchemaCatalog
from mdhub.serde.generate import fullname
from mdhub.serde.mapping import change_to_avro, command_to_avro, potential_match_from_avro
from mdhub.stream.pipeline import EntityPipeline, Message, Outcome
from mdhub.stream.replay import LocalResolveStage, router_order
from mdhub.stream.router import OrderedMerge, Pending

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class Feed:
    """Builds source and command messages with rising broker times and feeds a stage."""

    def __init__(self, model: HubModel, catalog: SchemaCatalog) -> None:
        self.entity = model.entity("customer")
        self.pipeline = EntityPipeline(self.entity, catalog, "t")
        self.stage = LocalResolveStage(self.pipeline)
        self.change_codec = catalog.codec(fullname("customer", "CandidateChange"))
        self.command_codec = catalog.codec("mdhub.common.StewardCommand")
        self.clock = itertools.count(1)
        self.sent: list[Message] = []

    def _message(self, topic: str, key: bytes, value: bytes) -> Message:
        tick = next(self.clock)
        message = Message(topic, 0, tick, 1_767_225_600_000 + tick * 1000, key, value)
        self.sent.append(message)
        return message

    def change(self, ref: str, version: int = 1, op: Op = Op.UPSERT, **attrs: Any) -> Any:
        source, key = ref.split(":")
        change = CandidateChange(
            f"{ref}/{version}",
            "customer",
            source,
            key,
            op,
            version,
            T0 + dt.timedelta(seconds=next(self.clock)),
            attrs,
        )
        value = self.change_codec.encode(change_to_avro(self.entity, change))
        return self.stage.feed(self._message(self.pipeline.source_topic, ref.encode(), value))

    def command(self, action: Action, golden_id: str = "", **fields: Any) -> Any:
        command = StewardCommand(
            command_id=f"cmd-{next(self.clock)}",
            entity="customer",
            golden_id=golden_id,
            action=action,
            issued_at=T0 + dt.timedelta(seconds=next(self.clock)),
            **fields,
        )
        value = self.command_codec.encode(command_to_avro(command))
        key = (golden_id or fields.get("source_ref") or "x").encode()
        return self.stage.feed(self._message(self.pipeline.commands_topic, key, value))

    def golden_of(self, ref: str) -> Any:
        summary = self.stage.index.summary(ref)
        assert summary is not None, ref
        return self.stage.goldens()[summary.golden_id]


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model() -> HubModel:
    return load_model(REPO / "config" / "model.yaml")


@pytest.fixture(scope="module")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.load(REPO / "schemas")


@pytest.fixture
def feed(model: HubModel, catalog: SchemaCatalog) -> Feed:
    return Feed(model, catalog)


ROBERT = {
    "first_name": "Robert",
    "last_name": "Smith",
    "email": "bob.smith@example.com",
    "birth_date": dt.date(1980, 5, 6),
}


def test_duplicates_across_sources_become_one_golden_record(feed: Feed) -> None:
    feed.change("crm:C1", **ROBERT, phone="+12025550101")
    result = feed.change(
        "erp:E1",
        first_name="Bob",
        last_name="Smith",
        birth_date=dt.date(1980, 6, 5),
        street="1 Main St",
        postal_code="10001",
    )  # nickname, day and month swapped, no e-mail: found by surname + birth year
    feed.change("webshop:W1", first_name="Robert", last_name="Smyth", email="bob.smith@example.com")

    golden = feed.golden_of("crm:C1")
    assert [s.source_ref for s in golden.active_sources] == ["crm:C1", "erp:E1", "webshop:W1"]
    assert golden.attributes["street"] == "1 Main St"  # from the ERP record
    assert golden.attributes["phone"] == "+12025550101"  # from the CRM record
    assert result.outcome is Outcome.ACCEPTED
    links = {k.source_ref: k for k in golden.links}
    assert links["crm:C1"].method is LinkMethod.CREATED
    erp = links["erp:E1"]
    assert erp.method is LinkMethod.MATCHED and erp.matched_ref == "crm:C1"
    assert erp.blocking_key is not None and erp.blocking_key.startswith("name")
    details = {c.attribute: c.detail for c in erp.contributions}
    assert details["first_name"] == "nickname"
    assert details["birth_date"] == "swapped day/month"
    assert links["webshop:W1"].blocking_key == "email=bob.smith@example.com"
    assert len(feed.stage.goldens()) == 1


def test_a_namesake_with_another_birth_date_stays_apart(feed: Feed) -> None:
    feed.change("crm:C1", **ROBERT)
    feed.change("erp:E9", **{**ROBERT, "birth_date": dt.date(1955, 2, 3)})
    assert feed.golden_of("crm:C1").golden_id != feed.golden_of("erp:E9").golden_id


def reviews_of(feed: Feed, result: Any) -> list[Any]:
    return [
        potential_match_from_avro(feed.pipeline.review_codec.decode(o.value))
        for o in result.outputs
        if o.topic == feed.pipeline.review_topic
    ]


# names in one country score 11.8 + 1.0: a match, but less than ambiguity_margin (2) above it
US_ROBERT = {**ROBERT, "country": "US"}
NAMES = {"first_name": "Robert", "last_name": "Smith"}


def golden_of_crm_and_erp(feed: Feed, **erp: Any) -> str:
    """crm:C1 (US_ROBERT) and erp:E1 (names, a street, the country and ``erp``), linked by
    ``erp``; return their golden id."""
    feed.change("crm:C1", **US_ROBERT)
    feed.change("erp:E1", **NAMES, street="1 Main St", country="US", **erp)
    golden_id = feed.golden_of("crm:C1").golden_id
    assert feed.golden_of("erp:E1").golden_id == golden_id
    return golden_id


def test_names_in_the_same_country_link_when_no_other_golden_record_is_close(feed: Feed) -> None:
    feed.change("crm:C1", **US_ROBERT)
    result = feed.change("erp:E1", first_name="Robert", last_name="Smith", country="US")

    assert result.outcome is Outcome.ACCEPTED
    assert feed.golden_of("erp:E1").golden_id == feed.golden_of("crm:C1").golden_id


def test_names_matching_two_golden_records_equally_go_to_a_steward(feed: Feed) -> None:
    feed.change("crm:C1", **US_ROBERT)
    feed.change(
        "crm:C2", **{**US_ROBERT, "email": "rs55@example.org", "birth_date": dt.date(1955, 2, 3)}
    )
    first, second = feed.golden_of("crm:C1"), feed.golden_of("crm:C2")
    assert first.golden_id != second.golden_id  # namesakes: another birth date

    result = feed.change("erp:E1", first_name="Robert", last_name="Smith", country="US")

    assert result.outcome is Outcome.PENDING_REVIEW
    mine = feed.golden_of("erp:E1").golden_id
    assert mine not in (first.golden_id, second.golden_id)
    reviews = reviews_of(feed, result)
    assert {(r.ref, r.candidate_ref) for r in reviews} == {
        ("erp:E1", "crm:C1"),
        ("erp:E1", "crm:C2"),
    }
    assert all(12 <= r.score < 14 for r in reviews)


def test_a_golden_record_is_scored_as_a_whole_not_by_its_closest_source(feed: Feed) -> None:
    # the ERP record is linked by the birth date and holds no e-mail
    golden_id = golden_of_crm_and_erp(feed, birth_date=ROBERT["birth_date"])

    # names and country agree with the ERP record (a match on its own), but the e-mail
    # differs from the CRM record's: the golden record as a whole is a review
    result = feed.change("webshop:W1", **NAMES, email="rob@other.org", country="US")

    assert result.outcome is Outcome.PENDING_REVIEW
    assert feed.golden_of("webshop:W1").golden_id != golden_id
    (review,) = reviews_of(feed, result)
    email = next(c for c in review.contributions if c.attribute == "email")
    assert email.weight < 0


def test_a_no_match_rule_with_one_source_rules_the_golden_record_out(feed: Feed) -> None:
    # the ERP record is linked by the e-mail and holds no birth date
    golden_id = golden_of_crm_and_erp(feed, email=ROBERT["email"])

    # names and country agree with the ERP record, the birth date differs from the CRM one
    result = feed.change("webshop:W1", **NAMES, birth_date=dt.date(1955, 2, 3), country="US")

    assert result.outcome is Outcome.ACCEPTED  # another person: no review either
    assert reviews_of(feed, result) == []
    assert feed.golden_of("webshop:W1").golden_id != golden_id


def test_a_record_a_steward_split_out_and_linked_back_does_not_rule_its_golden_record_out(
    feed: Feed,
) -> None:
    # crm:C1 is split out by a steward and linked back to erp:E1 (no birth date): split-out
    # records are never compared automatically, so C1's other birth date does not count
    golden_id = golden_of_crm_and_erp(feed, email=ROBERT["email"])
    feed.command(Action.SPLIT, golden_id, source_ref="crm:C1")
    feed.command(Action.LINK, source_ref="crm:C1", other_ref="erp:E1")
    linked = feed.golden_of("erp:E1").golden_id
    assert feed.golden_of("crm:C1").golden_id == linked

    # names, e-mail and country agree with erp:E1; the birth date differs from crm:C1's
    feed.change(
        "webshop:W1", **NAMES, email=ROBERT["email"], birth_date=dt.date(1955, 2, 3), country="US"
    )

    assert feed.golden_of("webshop:W1").golden_id == linked


def test_a_new_birth_date_moves_a_record_in_its_blocks(feed: Feed) -> None:
    feed.change("crm:C1", **US_ROBERT)
    # the same names and birth year: the same blocking keys, another day
    feed.change("crm:C1", 2, **{**US_ROBERT, "birth_date": dt.date(1980, 7, 8)})

    feed.change("webshop:W1", **NAMES, birth_date=dt.date(1980, 7, 8))

    assert feed.golden_of("webshop:W1").golden_id == feed.golden_of("crm:C1").golden_id


def test_a_record_matching_two_golden_records_of_different_people_does_not_merge_them(
    feed: Feed,
) -> None:
    feed.change("crm:C1", **ROBERT)
    feed.change(
        "crm:C2",
        first_name="Robert",
        last_name="Smith",
        phone="+12025550188",
        birth_date=dt.date(1955, 2, 3),
    )
    first, second = feed.golden_of("crm:C1"), feed.golden_of("crm:C2")
    assert first.golden_id != second.golden_id

    # e-mail of the one, phone of the other: both score a match, yet their birth dates differ
    feed.change(
        "webshop:W1",
        first_name="Robert",
        last_name="Smith",
        email=ROBERT["email"],
        phone="+12025550188",
    )

    goldens = feed.stage.goldens()
    assert goldens[first.golden_id].status is GoldenStatus.ACTIVE
    assert goldens[second.golden_id].status is GoldenStatus.ACTIVE
    # the e-mail weighs a little more than the phone (m/u 1,600 against 1,500)
    assert feed.golden_of("webshop:W1").golden_id == first.golden_id
    assert [s.source_ref for s in goldens[second.golden_id].active_sources] == ["crm:C2"]


def test_a_record_between_the_thresholds_gets_its_own_golden_and_a_review(feed: Feed) -> None:
    feed.change("crm:C1", **ROBERT)
    result = feed.change("webshop:W5", first_name="Robert", last_name="Smith")  # names only
    assert result.outcome is Outcome.PENDING_REVIEW
    (out,) = [o for o in result.outputs if o.topic == feed.pipeline.review_topic]
    match = potential_match_from_avro(feed.pipeline.review_codec.decode(out.value))
    assert match.status == "open"
    assert (match.ref, match.candidate_ref) == ("webshop:W5", "crm:C1")
    assert 6 <= match.score < 12  # the model's review and match thresholds
    assert feed.golden_of("webshop:W5").golden_id != feed.golden_of("crm:C1").golden_id

    accepted = feed.command(
        Action.ACCEPT_MATCH, source_ref="webshop:W5", other_ref="crm:C1", pair_id=match.pair_id
    )
    assert feed.golden_of("webshop:W5").golden_id == feed.golden_of("crm:C1").golden_id
    decisions = [
        potential_match_from_avro(feed.pipeline.review_codec.decode(o.value))
        for o in accepted.outputs
        if o.topic == feed.pipeline.review_topic
    ]
    assert [(d.pair_id, d.status) for d in decisions] == [(match.pair_id, "accepted")]


def test_a_record_that_bridges_two_golden_records_merges_them(feed: Feed) -> None:
    feed.change("crm:C1", first_name="Ann", last_name="Lee", email="ann@example.com")
    feed.change("erp:E1", first_name="Ann", last_name="Lee", phone="+12025550199")
    first, second = feed.golden_of("crm:C1"), feed.golden_of("erp:E1")
    assert first.golden_id != second.golden_id  # names alone: not enough

    result = feed.change(
        "webshop:W1",
        first_name="Ann",
        last_name="Lee",
        email="ann@example.com",
        phone="+12025550199",
    )
    survivor = feed.golden_of("webshop:W1")
    assert {s.source_ref for s in survivor.active_sources} == {"crm:C1", "erp:E1", "webshop:W1"}
    loser_id = ({first.golden_id, second.golden_id} - {survivor.golden_id}).pop()
    loser = feed.stage.goldens()[loser_id]
    assert loser.status is GoldenStatus.MERGED and loser.merged_into == survivor.golden_id
    assert loser.attributes == {} and loser.sources == ()
    events = [o.key.decode() for o in result.outputs if o.topic == feed.pipeline.changes_topic]
    assert loser_id in events and survivor.golden_id in events
    moved = [k for k in survivor.links if k.merged_from == loser_id]
    assert moved


def test_an_update_that_stops_matching_splits_the_record_out(feed: Feed) -> None:
    feed.change("crm:C1", **ROBERT)
    feed.change("erp:E1", **{**ROBERT, "email": "bob.smith@example.com"})
    golden_id = feed.golden_of("crm:C1").golden_id
    assert feed.golden_of("erp:E1").golden_id == golden_id

    feed.change("erp:E1", 2, first_name="Maria", last_name="Garcia", email="mg@example.org")
    assert feed.golden_of("crm:C1").golden_id == golden_id  # the creator keeps the id
    assert feed.golden_of("erp:E1").golden_id != golden_id
    assert [s.source_ref for s in feed.golden_of("crm:C1").active_sources] == ["crm:C1"]
    moved = feed.golden_of("erp:E1")
    assert moved.attributes["first_name"] == "Maria" and moved.version == 1
    assert [(k.source_ref, k.method) for k in moved.links] == [("erp:E1", LinkMethod.SPLIT)]
    assert len(feed.stage.goldens()) == 2  # no interim golden record on the way


def test_an_update_that_matches_another_golden_record_moves_there_with_its_new_values(
    feed: Feed,
) -> None:
    maria = {
        "first_name": "Maria",
        "last_name": "Garcia",
        "email": "mg@example.org",
        "birth_date": dt.date(1975, 3, 2),
    }
    feed.change("crm:C1", **ROBERT)
    feed.change("webshop:W1", **maria)
    feed.change("erp:E1", **ROBERT)
    assert feed.golden_of("erp:E1").golden_id == feed.golden_of("crm:C1").golden_id

    # the ERP record turns out to be Maria's, with a phone nobody knew
    result = feed.change("erp:E1", 2, **{**maria, "phone": "+12025550177"})
    target = feed.golden_of("webshop:W1")
    assert feed.golden_of("erp:E1").golden_id == target.golden_id
    assert target.attributes["phone"] == "+12025550177"
    assert target.source("erp", "E1").source_version == 2  # type: ignore[union-attr]
    links = {k.source_ref: k for k in target.links}
    assert links["erp:E1"].method is LinkMethod.MATCHED
    assert links["erp:E1"].matched_ref == "webshop:W1"
    assert [s.source_ref for s in feed.golden_of("crm:C1").active_sources] == ["crm:C1"]
    assert len(feed.stage.goldens()) == 2
    changed = [o.key for o in result.outputs if o.topic == feed.pipeline.changes_topic]
    assert sorted(changed) == sorted(
        [feed.golden_of("crm:C1").golden_id.encode(), target.golden_id.encode()]
    )


def test_steward_split_and_not_a_match_hold_and_replay_the_same(
    model: HubModel, catalog: SchemaCatalog
) -> None:
    feed = Feed(model, catalog)
    feed.change("crm:C1", **ROBERT)
    feed.change("erp:E1", **ROBERT)
    feed.change("webshop:W1", **ROBERT)
    golden_id = feed.golden_of("crm:C1").golden_id
    feed.command(Action.SPLIT, golden_id, source_ref="webshop:W1")
    feed.command(Action.NOT_MATCH, source_ref="crm:C1", other_ref="erp:E1")
    # later changes of the same people do not bring them back together
    feed.change("webshop:W1", 2, **{**ROBERT, "phone": "+12025550101"})
    feed.change("erp:E1", 2, **{**ROBERT, "city": "Springfield"})
    ids = {ref: feed.golden_of(ref).golden_id for ref in ("crm:C1", "erp:E1", "webshop:W1")}
    assert len(set(ids.values())) == 3
    assert ids["crm:C1"] == golden_id
    split = {k.source_ref: k for k in feed.golden_of("webshop:W1").links}["webshop:W1"]
    assert split.method is LinkMethod.SPLIT and split.command_id

    # a full replay of the same inputs, in the same order, into an empty stage: same result
    replay = LocalResolveStage(EntityPipeline(model.entity("customer"), catalog, "t"))
    rank = {feed.pipeline.source_topic: 0, feed.pipeline.commands_topic: 1}
    replay.feed_all(router_order(feed.sent, rank))
    assert replay.store == feed.stage.store
    assert replay.clusters() == feed.stage.clusters()


def test_link_forces_two_records_together_and_undo_not_match_allows_matching(
    feed: Feed,
) -> None:
    feed.change("crm:C1", first_name="Jo", last_name="Ng", email="jo@a.example")
    feed.change("erp:E1", first_name="Johanna", last_name="Nguyen", street="2 Elm Rd")
    assert feed.golden_of("crm:C1").golden_id != feed.golden_of("erp:E1").golden_id
    feed.command(Action.LINK, source_ref="erp:E1", other_ref="crm:C1")
    golden = feed.golden_of("crm:C1")
    assert golden.golden_id == feed.golden_of("erp:E1").golden_id
    assert any(k.method is LinkMethod.STEWARD_LINK and k.command_id for k in golden.links)

    rejected = feed.command(Action.LINK, source_ref="erp:NOPE", other_ref="crm:C1")
    assert rejected.outcome is Outcome.REJECTED
    assert rejected.reasons[0].code == "UNKNOWN_SOURCE_RECORD"


def test_taking_back_a_not_a_match_joins_records_that_match_again(feed: Feed) -> None:
    feed.change("crm:C1", **ROBERT)
    feed.change("erp:E1", **ROBERT)
    golden_id = feed.golden_of("crm:C1").golden_id
    feed.command(Action.NOT_MATCH, source_ref="crm:C1", other_ref="erp:E1")
    apart = feed.golden_of("erp:E1").golden_id
    assert apart != golden_id

    result = feed.command(Action.UNDO_NOT_MATCH, source_ref="crm:C1", other_ref="erp:E1")

    assert result.outcome is Outcome.ACCEPTED
    assert feed.golden_of("erp:E1").golden_id == feed.golden_of("crm:C1").golden_id == golden_id
    loser = feed.stage.goldens()[apart]
    assert (loser.status, loser.merged_into) == (GoldenStatus.MERGED, golden_id)


def test_taking_back_a_not_a_match_proposes_a_review_band_pair_again(feed: Feed) -> None:
    feed.change("crm:C1", **ROBERT)
    feed.change("webshop:W5", first_name="Robert", last_name="Smith")  # names only: a review
    feed.command(Action.NOT_MATCH, source_ref="webshop:W5", other_ref="crm:C1")

    result = feed.command(Action.UNDO_NOT_MATCH, source_ref="webshop:W5", other_ref="crm:C1")

    (review,) = reviews_of(feed, result)
    assert (review.status, review.ref, review.candidate_ref) == ("open", "webshop:W5", "crm:C1")
    assert 6 <= review.score < 12
    assert feed.golden_of("webshop:W5").golden_id != feed.golden_of("crm:C1").golden_id


def test_taking_back_a_not_a_match_leaves_apart_what_a_rule_separates(feed: Feed) -> None:
    feed.change("crm:C1", **ROBERT)
    feed.change("erp:E9", **{**ROBERT, "birth_date": dt.date(1955, 2, 3)})
    feed.command(Action.NOT_MATCH, source_ref="crm:C1", other_ref="erp:E9")

    result = feed.command(Action.UNDO_NOT_MATCH, source_ref="crm:C1", other_ref="erp:E9")

    assert reviews_of(feed, result) == []
    assert feed.golden_of("crm:C1").golden_id != feed.golden_of("erp:E9").golden_id


def test_merge_command_merges_two_golden_records(feed: Feed) -> None:
    feed.change("crm:C1", first_name="Li", last_name="Wu", email="li@x.example")
    feed.change("erp:E1", first_name="Lee", last_name="Woo", street="9 Oak Ave")
    a, b = feed.golden_of("crm:C1").golden_id, feed.golden_of("erp:E1").golden_id
    feed.command(Action.MERGE, a, other_golden_id=b)
    goldens = feed.stage.goldens()
    statuses = sorted(goldens[g].status.value for g in (a, b))
    assert statuses == ["active", "merged"]


def test_blocks_over_the_cap_are_reported_not_scanned(
    model: HubModel, catalog: SchemaCatalog
) -> None:
    feed = Feed(model, catalog)
    cap = feed.entity.matching.max_block_size  # type: ignore[union-attr]
    for i in range(cap + 5):
        feed.change(f"crm:K{i}", first_name="Sam", last_name=f"Doe{i}", email="shared@example.com")
    result = feed.change("erp:Z", first_name="Zed", last_name="Zulu", email="shared@example.com")
    assert "email=shared@example.com" in result.capped
    assert result.comparisons <= cap + 10


def test_router_merge_orders_by_broker_time_and_waits_for_silent_partitions() -> None:
    merge = OrderedMerge([("src", 0), ("src", 1), ("cmd", 0)], {"src": 0, "cmd": 1}, margin_ms=10)
    for lane in merge.lanes.values():
        lane.next_offset = 0
    merge.add(Pending("src", 0, 0, 100, b"a", b"1"))
    merge.add(Pending("src", 0, 1, 300, b"a", b"2"))
    merge.add(Pending("src", 1, 0, 200, b"b", b"3"))
    # nothing is known of the commands partition yet: nothing may go
    assert merge.pop_ready(10) == []
    assert merge.blockers() == [("cmd", 0)]
    merge.caught_up(("cmd", 0), 250)  # nothing unread there at 250 ms: safe up to 240
    assert [(p.topic, p.partition, p.offset) for p in merge.pop_ready(10)] == [
        ("src", 0, 0),
        ("src", 1, 0),
    ]
    merge.add(Pending("cmd", 0, 0, 260, b"c", b"4"))
    merge.caught_up(("src", 1), 1000)
    assert [p.topic for p in merge.pop_ready(10)] == ["cmd"]  # src@300 waits: cmd may get more
    merge.caught_up(("cmd", 0), 1000)
    got = merge.pop_ready(10)
    assert [(p.topic, p.timestamp) for p in got] == [("src", 300)]
    assert merge.waiting() == 0


def test_an_index_rebuilt_from_the_store_lists_every_block_as_the_live_one(
    model: HubModel, catalog: SchemaCatalog
) -> None:
    """After a restart the index comes from the stored summaries; block order decides which
    candidates a capped block yields, so it must be the live order, not the store's key order."""
    from mdhub.stream.identity import IdentityIndex

    feed = Feed(model, catalog)
    for i in range(30):
        feed.change(f"crm:R{29 - i}", first_name="Kim", last_name=f"Park{i % 3}", city="Seoul")
    # records whose blocking keys change move to the end of their blocks
    feed.change("crm:R5", 2, first_name="Kim", last_name="Parker", city="Busan")
    feed.change("crm:R17", 2, first_name="Kim", last_name="Park9", city="Seoul")
    live = feed.stage.index
    rebuilt = IdentityIndex.load(feed.stage.store.items())
    assert {k: list(v) for k, v in rebuilt.blocks.items()} == {
        k: list(v) for k, v in live.blocks.items()
    }
    assert rebuilt.next_seq == live.next_seq


def test_state_from_before_identity_resolution_is_adopted_not_duplicated(feed: Feed) -> None:
    """A golden record stored by a hub without identity state (no summary): the next change of
    its source record goes to it instead of creating a second golden record."""
    feed.change("crm:OLD", **ROBERT)
    (golden_id,) = feed.stage.goldens()
    for key in [k for k in feed.stage.store if k.startswith(b"__ref__/")]:
        del feed.stage.store[key]  # as written before summaries existed
    feed.stage.index = type(feed.stage.index)()
    feed.change("crm:OLD", 2, **{**ROBERT, "phone": "+12025550101"})
    assert list(feed.stage.goldens()) == [golden_id]
    assert feed.stage.goldens()[golden_id].version == 2


def test_a_summary_survives_its_json_whatever_its_texts_hold() -> None:
    summary = Summary(
        ref="crm:C1",
        golden_id="g1",
        features={"last_name": "müller", "birth_date:date": [722815, 1980, 5, 6], "n": 0.1},
        keys=("name=M460|M460",),
        active=False,
        alone=True,
        not_match=("erp:E1",),
        linked=("webshop:W1",),
        seq=7,
    )
    data = summary.to_json()
    assert Summary.from_json(data) == summary
    # the same bytes whatever order the features were made in (keys sorted: a replay writes the
    # same state records)
    reordered = replace(summary, features=dict(reversed(list(summary.features.items()))))
    assert reordered.to_json() == data
    # a lone surrogate (a text decoded with errors="surrogateescape") is written escaped
    odd = Summary(ref="crm:C2", golden_id="g2", features={"city": "a\udc80b"})
    assert Summary.from_json(odd.to_json()) == odd
