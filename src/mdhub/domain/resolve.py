"""Identity resolution: which golden record a source record belongs to, and the merges and splits
that follow. Pure: state comes through a :class:`Workspace`, results are returned as a
:class:`Resolution`; time comes from the change or command, never from the clock.

Every source record known to the hub has a :class:`Summary` (its golden id, its match features and
blocking keys, and the steward constraints on it). A known source key goes straight to its golden
record (the xref). A new one takes candidates from the blocking index, scores them, and then:

* at or above the match threshold (or by a deterministic match rule): it links to that golden
  record; when it matches several golden records they merge into one (the survivor keeps its id,
  the others become ``merged`` redirects);
* between the review and match thresholds: it gets a golden record of its own and a potential
  match for a steward;
* below: it gets a golden record of its own.

An update that changes matching attributes is re-evaluated: a source record that no longer matches
any other source record of its golden record is split out and resolved again, and one that now
also matches another golden record merges the two.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import orjson

from mdhub.domain.identity import golden_id_for
from mdhub.domain.matching import (
    Features,
    MatchingSpec,
    MatchScore,
    Verdict,
    blocking_keys,
    combine,
    compare,
    features,
)
from mdhub.domain.matching.plan import date_ordinal
from mdhub.domain.merge import Applied, Rejected, Unchanged, apply_change, rebuild, with_link
from mdhub.domain.model import EntityModel
from mdhub.domain.records import (
    CandidateChange,
    Cause,
    CauseKind,
    ChangeEvent,
    GoldenRecord,
    GoldenStatus,
    Link,
    LinkContribution,
    LinkMethod,
    Op,
    Reason,
    SourceRecord,
    Value,
)
from mdhub.domain.versioning import content_hash

__all__ = [
    "MatchKeys",
    "PotentialMatch",
    "Resolution",
    "Resolver",
    "ReviewStatus",
    "Summary",
    "Workspace",
    "match_keys",
    "pair_id",
]

_T = TypeVar("_T")
_PAIR_NAMESPACE = uuid.UUID("0d6f3b8a-5c1e-5a57-8f0e-7265766965f1").bytes
MAX_REVIEWS_PER_RECORD = 3
# one encoder for every summary: json.dumps with options builds a new one per call
_SUMMARY_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


def _summary_json(data: dict[str, Any]) -> bytes:
    # orjson writes a summary in 2.0 us, json in 5.0 (the benchmark's records; the worker writes
    # one or two per input); what orjson refuses (a lone surrogate in a text) json escapes
    try:
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return _SUMMARY_JSON(data).encode()


def _summary_data(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


@dataclass(frozen=True, slots=True)
class Summary:
    """What the resolver keeps about one source record (the xref entry and its match summary)."""

    ref: str
    golden_id: str
    features: dict[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] = ()
    active: bool = True
    alone: bool = False  # split out by a steward: never matched automatically again
    not_match: tuple[str, ...] = ()  # refs a steward said are a different entity
    linked: tuple[str, ...] = ()  # refs a steward said are the same entity
    seq: int = 0  # when it (last) entered its blocks: orders blocks the same after a restart

    def to_json(self) -> bytes:
        """Serialize (compact JSON)."""
        data: dict[str, Any] = {"r": self.ref, "g": self.golden_id}
        if self.features:
            data["f"] = self.features
        if self.keys:
            data["k"] = list(self.keys)
        if not self.active:
            data["a"] = 0
        if self.alone:
            data["s"] = 1
        if self.not_match:
            data["n"] = list(self.not_match)
        if self.linked:
            data["l"] = list(self.linked)
        if self.seq:
            data["q"] = self.seq
        return _summary_json(data)

    @classmethod
    def from_json(cls, data: bytes) -> Summary:
        """Deserialize."""
        raw = _summary_data(data)
        return cls(
            ref=raw["r"],
            golden_id=raw["g"],
            features=raw.get("f", {}),
            keys=tuple(raw.get("k", ())),
            active=bool(raw.get("a", 1)),
            alone=bool(raw.get("s", 0)),
            not_match=tuple(raw.get("n", ())),
            linked=tuple(raw.get("l", ())),
            seq=int(raw.get("q", 0)),
        )

    @property
    def indexed(self) -> bool:
        """Whether the record is in the blocking index (active and not split out)."""
        return self.active and bool(self.keys)


class ReviewStatus:
    """States of a potential match on the review topic."""

    OPEN = "open"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class PotentialMatch:
    """A pair of source records that may be one entity: for a steward to decide."""

    pair_id: str
    status: str
    ref: str
    golden_id: str
    candidate_ref: str
    candidate_golden_id: str
    score: float
    blocking_key: str | None
    contributions: tuple[LinkContribution, ...]
    detected_at: dt.datetime
    decided_by: str | None = None


def pair_id(entity: str, ref_a: str, ref_b: str) -> str:
    """The stable id of the pair of two source records (order does not matter)."""
    first, second = sorted((ref_a, ref_b))
    digest = bytearray(
        hashlib.sha1(_PAIR_NAMESPACE + f"{entity}/{first}|{second}".encode()).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


class Workspace(Protocol):
    """Read access to the resolver's state (the stream stage serves it from its store)."""

    def golden(self, golden_id: str) -> GoldenRecord | None:
        """The golden state, or None."""

    def summary(self, ref: str) -> Summary | None:
        """The summary of a source record, or None if the hub has never seen it."""

    def block(self, key: str) -> Collection[str]:
        """The refs in a block, oldest first (it may be a live view: read it before changing the
        workspace)."""

    def dated_block(self, key: str, date_key: str) -> Collection[tuple[str, int | None]] | None:
        """The block's refs with their dates (the ordinal of the features' ``date_key``, None
        without one), as :meth:`block`; None if the workspace does not keep those dates."""


@dataclass(slots=True)
class Resolution:
    """Everything one input changed. ``goldens`` are in the order their versions must go out."""

    goldens: list[Applied] = field(default_factory=list)
    states: dict[str, GoldenRecord] = field(default_factory=dict)  # new state per golden id
    summaries: dict[str, Summary] = field(default_factory=dict)
    reviews: list[PotentialMatch] = field(default_factory=list)
    rejected: Rejected | None = None
    comparisons: int = 0
    capped: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether any golden version was made."""
        return bool(self.goldens)


def _contributions(score: MatchScore) -> tuple[LinkContribution, ...]:
    return tuple(
        LinkContribution(c.attribute, c.method, c.similarity, round(c.weight, 4), c.detail)
        for c in score.contributions
    )


@dataclass(slots=True)
class _Candidate:
    ref: str
    golden_id: str
    score: MatchScore
    key: str | None  # the blocking key that found it (None: not found through the blocks)

    def proposed(self, entity: str, ref: str, golden_id: str, at: dt.datetime) -> PotentialMatch:
        """The open potential match of ``ref`` (in ``golden_id``) with this candidate."""
        return PotentialMatch(
            pair_id=pair_id(entity, ref, self.ref),
            status=ReviewStatus.OPEN,
            ref=ref,
            golden_id=golden_id,
            candidate_ref=self.ref,
            candidate_golden_id=self.golden_id,
            score=round(self.score.score, 4),
            blocking_key=self.key,
            contributions=_contributions(self.score),
            detected_at=at,
        )


class _View:
    """The workspace with this input's own changes laid over it."""

    def __init__(self, ws: Workspace, out: Resolution) -> None:
        self.ws = ws
        self.out = out
        # the workspace does not change while one input is resolved: each golden record is read
        # from it once (a new record's id is looked up three times, as a miss in the store)
        self._read: dict[str, GoldenRecord | None] = {}

    def golden(self, golden_id: str) -> GoldenRecord | None:
        state = self.out.states.get(golden_id)
        if state is None:
            read = self._read
            if golden_id in read:
                return read[golden_id]
            state = read[golden_id] = self.ws.golden(golden_id)
        return state

    def summary(self, ref: str) -> Summary | None:
        return self.out.summaries.get(ref) or self.ws.summary(ref)

    def put_summary(self, summary: Summary) -> None:
        if self.summary(summary.ref) != summary:
            self.out.summaries[summary.ref] = summary

    def record(self, outcome: Applied | Unchanged, golden_id: str) -> GoldenRecord | None:
        if isinstance(outcome, Applied):
            self.out.goldens.append(outcome)
            self.out.states[golden_id] = outcome.golden
            return outcome.golden
        if outcome.state is not None:
            self.out.states[golden_id] = outcome.state
        return outcome.state


MatchKeys = tuple[dict[str, Any], tuple[str, ...]]
"""A record's match features and its blocking keys."""


def match_keys(spec: MatchingSpec | None, attributes: Mapping[str, Value]) -> MatchKeys:
    """The match features and blocking keys of a record with these (validated, standardized)
    attributes: nothing for an entity type without matching."""
    if spec is None:
        return {}, ()
    feats = features(spec, attributes)
    return feats, tuple(blocking_keys(spec, feats))


class Resolver:
    """Identity resolution of one entity type."""

    def __init__(self, entity: EntityModel) -> None:
        self.entity = entity
        self.spec: MatchingSpec | None = entity.matching
        self.computed = 0
        """Changes whose match keys this resolver computed (not given them)."""

    # -- ids ---------------------------------------------------------------------------------

    def _new_id(self, view: _View, ref: str) -> str:
        """The golden id for a record that starts a golden record: derived from its ref (a later
        one gets a numbered variant when a split left that id in use)."""
        source, _, key = ref.partition(":")
        candidate = golden_id_for(self.entity.name, source, key)
        n = 1
        while (taken := view.golden(candidate)) is not None and taken.version > 0:
            candidate = golden_id_for(self.entity.name, source, f"{key}#{n}")
            n += 1
        return candidate

    # -- matching ----------------------------------------------------------------------------

    def _features(self, change: CandidateChange) -> MatchKeys:
        self.computed += 1
        return match_keys(self.spec, change.attributes)

    def _blocked_by_steward(self, view: _View, mine: Summary, other: Summary) -> bool:
        if other.ref in mine.not_match or mine.ref in other.not_match:
            return True
        return bool((mine.alone or other.alone) and other.ref not in mine.linked)

    def _golden_forbidden(self, view: _View, mine: Summary, golden_id: str) -> bool:
        """Whether a steward said ``mine`` is not the entity of some record of that golden."""
        state = view.golden(golden_id)
        if state is None:
            return False
        for record in state.active_sources:
            if record.source_ref in mine.not_match:
                return True
            other = view.summary(record.source_ref)
            if other is not None and mine.ref in other.not_match:
                return True
        return False

    def _candidates(self, view: _View, mine: Summary, exclude: set[str]) -> dict[str, _Candidate]:
        """The golden records the blocks of ``mine`` lead to, each scored as a whole (over its
        records that share a blocking key, see :meth:`_score_against`).

        With a date rule to narrow by (:class:`~mdhub.domain.matching.plan.Narrowing`), records
        whose date the rule tells apart from ``mine``'s are left out as they are read: most of
        a large block of namesakes costs a lookup each, not a score. A golden record with such
        a record in the blocks is no candidate (:meth:`_score_against` would return None for
        it, the rule firing), unless a steward decision keeps that record apart, which the
        full reading below decides."""
        spec = self.spec
        if spec is None or mine.alone:
            return {}
        narrowing = spec._plan.narrowing
        dates = narrowing.dates(mine.features) if narrowing is not None else None
        if narrowing is None or dates is None:
            return self._scored(view, mine, self._found(view, mine, exclude, "", None))
        found = self._found(view, mine, exclude, narrowing.key, dates)
        if found:
            ruled_out = self._ruled_out_by_date(view, mine, found, narrowing.key, dates)
            if ruled_out is None:  # a steward decision is involved: read the blocks in full
                found = self._found(view, mine, exclude, "", None, count=False)
            else:
                for golden_id in ruled_out:
                    del found[golden_id]
        return self._scored(view, mine, found)

    def _window(
        self, view: _View, key: str, members: Collection[_T], count: bool
    ) -> Collection[_T]:
        """The newest ``max_block_size`` of a block's members (``count``: note a block cut so
        in the resolution)."""
        assert self.spec is not None
        cap = self.spec.max_block_size
        if len(members) <= cap:
            return members
        if count:
            view.out.capped.append(key)
        return list(members)[-cap:]

    def _windows(self, view: _View, mine: Summary) -> list[Collection[str]]:
        """The refs of each block of ``mine`` that are read."""
        return [self._window(view, key, view.ws.block(key), False) for key in mine.keys]

    def _found(
        self,
        view: _View,
        mine: Summary,
        exclude: set[str],
        date_key: str,
        dates: frozenset[int] | None,
        count: bool = True,
    ) -> dict[str, tuple[str, list[Summary]]]:
        """Per golden id the blocks lead to: the key that found it first, and its records in
        the blocks' order; with ``dates``, records whose date (under ``date_key``) is not in
        it are skipped."""
        own = view.out.summaries
        seen: set[str] = {mine.ref}
        found: dict[str, tuple[str, list[Summary]]] = {}
        for key in mine.keys:
            refs: Collection[str]
            dated = view.ws.dated_block(key, date_key) if dates is not None else None
            if dated is not None and dates is not None:
                # the dates kept in the block: a record is skipped without reading its summary
                # (unless this input changed it: its own summary then says)
                dated = self._window(view, key, dated, count)
                refs = [ref for ref, date in dated if date is None or date in dates or ref in own]
            else:
                refs = self._window(view, key, view.ws.block(key), count)
            for ref in refs:
                if ref in seen:
                    continue
                other = view.summary(ref)
                if dates is not None and other is not None:
                    date = date_ordinal(other.features, date_key)
                    if date is not None and date not in dates:
                        continue  # left out of found; _ruled_out_by_date looks at it again
                seen.add(ref)
                if other is None or not other.indexed or other.golden_id in exclude:
                    continue
                entry = found.get(other.golden_id)
                if entry is None:
                    found[other.golden_id] = (key, [other])
                else:
                    entry[1].append(other)
        return found

    def _ruled_out_by_date(
        self,
        view: _View,
        mine: Summary,
        found: dict[str, tuple[str, list[Summary]]],
        date_key: str,
        dates: frozenset[int],
    ) -> set[str] | None:
        """The golden records of ``found`` with a record in the blocks whose date the rule tells
        apart from ``mine``'s; None if such a record is one a steward decision keeps apart."""
        out: set[str] = set()
        for refs in self._windows(view, mine):
            for ref in refs:
                other = view.summary(ref)
                if other is None or not other.indexed or other.golden_id not in found:
                    continue
                date = date_ordinal(other.features, date_key)
                if date is None or date in dates or ref == mine.ref:
                    continue
                if self._blocked_by_steward(view, mine, other):
                    return None
                view.out.comparisons += 1
                out.add(other.golden_id)
        return out

    def _scored(
        self, view: _View, mine: Summary, found: dict[str, tuple[str, list[Summary]]]
    ) -> dict[str, _Candidate]:
        best: dict[str, _Candidate] = {}
        for golden_id, (key, members) in found.items():
            scored = self._score_against(view, mine, members)
            if scored is not None:
                best[golden_id] = _Candidate(scored[0], golden_id, scored[1], key)
        return best

    def _score_against(
        self, view: _View, mine: Summary, members: Sequence[Summary]
    ) -> tuple[str, MatchScore] | None:
        """``mine`` scored against one golden record as a whole, from ``members`` (some or all of
        its source records): :func:`combine` of the pairs' scores, with the member whose own
        score is highest (ties: the smaller ref), which explanations name. None when a
        ``no_match`` rule fires with any member (``mine`` is provably another entity, so the
        golden record is no candidate at all) or a steward decision keeps every member apart."""
        spec = self.spec
        assert spec is not None
        scored: list[tuple[str, MatchScore]] = []
        features = mine.features
        for other in members:
            if self._blocked_by_steward(view, mine, other):
                continue
            score = compare(spec, features, other.features, early_exit=True)
            view.out.comparisons += 1
            if score.ruled_out:
                return None
            scored.append((other.ref, score))
        if not scored:
            return None
        ref = min(scored, key=lambda item: (-item[1].score, item[0]))[0]
        return ref, combine(spec, [score for _, score in scored])

    def _matches(self, view: _View, mine: Summary, ordered: list[_Candidate]) -> list[_Candidate]:
        """The candidates (best first) ``mine`` is linked to, and so merged with each other.

        Those scoring a match that no steward decision forbids, except:

        - none when the best of them is ambiguous: it scores less than ``ambiguity_margin``
          above the match threshold, no rule decided it, and another golden record scores at
          least a review (two similar entities, such as namesakes, and too little to tell which
          one it is: a steward decides);
        - a match is left out when a ``no_match`` rule separates one of its records from one of
          a better match's records: the two golden records are two entities and never merge.
        """
        assert self.spec is not None
        matches = [
            c
            for c in ordered
            if c.score.verdict is Verdict.MATCH
            and not self._golden_forbidden(view, mine, c.golden_id)
        ]
        if not matches:
            return matches
        top = matches[0]
        margin = self.spec.ambiguity_margin
        if (
            margin
            and top.score.rule is None
            and top.score.score < self.spec.match_threshold + margin
            and any(
                c.golden_id != top.golden_id and c.score.verdict is not Verdict.NO_MATCH
                for c in ordered
            )
        ):
            return []
        group = [top]
        for candidate in matches[1:]:
            if all(self._compatible(view, kept.golden_id, candidate.golden_id) for kept in group):
                group.append(candidate)
        return group

    def _compatible(self, view: _View, a: str, b: str) -> bool:
        """Whether golden records ``a`` and ``b`` may be one entity: no ``no_match`` rule fires
        between a record of one and a record of the other."""
        assert self.spec is not None
        mine = self._features_of(view, a)
        theirs = self._features_of(view, b)
        for fa in mine:
            for fb in theirs:
                view.out.comparisons += 1
                if compare(self.spec, fa, fb, early_exit=True).ruled_out:
                    return False
        return True

    def _features_of(self, view: _View, golden_id: str) -> list[Features]:
        state = view.golden(golden_id)
        if state is None:
            return []
        out: list[Features] = []
        for record in state.active_sources:
            summary = view.summary(record.source_ref)
            if summary is not None and summary.features:
                out.append(summary.features)
        return out

    def _survivor(self, view: _View, golden_ids: Sequence[str]) -> str:
        def rank(golden_id: str) -> tuple[int, dt.datetime, str]:
            state = view.golden(golden_id)
            assert state is not None
            return (-len(state.active_sources), state.created_at, golden_id)

        return min(golden_ids, key=rank)

    # -- golden-record operations --------------------------------------------------------------

    def _link_for(self, ref: str, method: LinkMethod, at: dt.datetime, **extra: Any) -> Link:
        source, _, key = ref.partition(":")
        return Link(source=source, source_key=key, method=method, decided_at=at, **extra)

    def _merge(
        self,
        view: _View,
        survivor_id: str,
        loser_id: str,
        cause: Cause,
        at: dt.datetime,
        relink: Link | None = None,
    ) -> None:
        """Merge ``loser_id`` into ``survivor_id``; ``relink`` replaces the link of the source
        record that caused it (a steward's link), the others keep theirs."""
        survivor = view.golden(survivor_id)
        loser = view.golden(loser_id)
        assert survivor is not None and loser is not None
        sources = tuple(sorted((*survivor.sources, *loser.sources), key=lambda r: r.source_ref))
        pinned = {o.attribute for o in survivor.overrides}
        overrides = (
            *survivor.overrides,
            *(o for o in loser.overrides if o.attribute not in pinned),
        )
        moved = tuple(replace(k, merged_from=loser_id) for k in loser.links)
        links = tuple(sorted((*survivor.links, *moved), key=lambda k: k.source_ref))
        if relink is not None:
            links = with_link(links, relink)
        outcome = rebuild(
            self.entity, survivor, survivor_id, sources, tuple(overrides), cause, at, links
        )
        view.record(outcome, survivor_id)
        # the loser: a redirect to the survivor, no attributes of its own
        status = GoldenStatus.MERGED
        merged = GoldenRecord(
            golden_id=loser_id,
            entity=self.entity.name,
            version=loser.version + 1,
            status=status,
            attributes={},
            lineage={},
            sources=(),
            created_at=loser.created_at,
            updated_at=max(loser.updated_at, at),
            content_hash=content_hash(status, {}, {}, ()),
            merged_into=survivor_id,
        )
        changed = tuple(n for n in self.entity.attributes if n in loser.attributes)
        event = ChangeEvent(
            golden_id=loser_id,
            entity=self.entity.name,
            version=merged.version,
            status=status,
            changed=changed,
            before=dict(loser.attributes),
            after={},
            cause=cause,
            occurred_at=at,
        )
        view.record(Applied(merged, event), loser_id)
        for record in loser.sources:
            self._repoint(view, record.source_ref, survivor_id)

    def _repoint(self, view: _View, ref: str, golden_id: str) -> None:
        """The xref: ``ref`` now belongs to ``golden_id``."""
        summary = view.summary(ref)
        if summary is not None:
            view.put_summary(replace(summary, golden_id=golden_id))

    def _take_out(
        self, view: _View, golden_id: str, ref: str, cause: Cause, at: dt.datetime
    ) -> SourceRecord | None:
        """Remove ``ref``'s source record and link from ``golden_id``; return the record."""
        state = view.golden(golden_id)
        assert state is not None
        record = state.source(*ref.split(":", 1))
        if record is None:
            return None
        rest = tuple(r for r in state.sources if r.source_ref != ref)
        links = tuple(k for k in state.links if k.source_ref != ref)
        view.record(
            rebuild(self.entity, state, golden_id, rest, state.overrides, cause, at, links),
            golden_id,
        )
        return record

    def _split(
        self, view: _View, golden_id: str, ref: str, cause: Cause, at: dt.datetime, link: Link
    ) -> None:
        """Move ``ref`` out of ``golden_id`` to a golden record of its own (a steward's split)."""
        record = self._take_out(view, golden_id, ref, cause, at)
        if record is None:
            return
        new_id = self._new_id(view, ref)
        view.record(rebuild(self.entity, None, new_id, (record,), (), cause, at, (link,)), new_id)
        self._repoint(view, ref, new_id)

    # -- source changes ----------------------------------------------------------------------

    def resolve(
        self, ws: Workspace, change: CandidateChange, given: MatchKeys | None = None
    ) -> Resolution:
        """Resolve and apply one validated candidate change.

        Args:
            given: the change's :func:`match_keys`, when computed already (by the worker's helper
                process, :mod:`mdhub.stream.ahead`); computed here otherwise.
        """
        out = Resolution()
        view = _View(ws, out)
        ref = change.source_ref
        known = view.summary(ref)
        if known is None:
            # state written before identity resolution existed: the record's own golden record
            natural = golden_id_for(self.entity.name, change.source, change.source_key)
            state = view.golden(natural)
            if state is not None and state.source(change.source, change.source_key) is not None:
                known = Summary(ref=ref, golden_id=natural, active=False)
        if change.op is Op.DELETE:
            return self._delete(view, change, known)
        feats, keys = self._features(change) if given is None else given
        cause = Cause(
            kind=CauseKind.SOURCE_CHANGE,
            id=change.change_id,
            source=change.source,
            source_key=change.source_key,
        )
        at = change.occurred_at
        if known is not None:
            state = view.golden(known.golden_id)
            outcome = apply_change(self.entity, state, change, known.golden_id)
            if isinstance(outcome, Rejected):
                out.rejected = outcome
                return out
            if isinstance(outcome, Unchanged) and outcome.why == "duplicate":
                return out
            mine = replace(known, features=feats, keys=keys, active=True)
            if self.spec is None or (known.features == feats and known.active):
                view.record(outcome, known.golden_id)
                view.put_summary(mine)
                return out
            view.put_summary(mine)
            if self._still_belongs(view, mine, state):
                view.record(outcome, known.golden_id)
                self._bridge(view, mine, known.golden_id, cause, at)
                return out
            # it no longer matches the rest of its golden record: take it out and resolve the
            # change as if the record were new (the check against its old version is done above)
            self._take_out(view, known.golden_id, ref, cause, at)
            self._place(view, change, mine, cause, at, exclude={known.golden_id}, split=True)
            return out
        mine = Summary(ref=ref, golden_id="", features=feats, keys=keys)
        self._place(view, change, mine, cause, at, exclude=set(), split=False)
        return out

    def _still_belongs(self, view: _View, mine: Summary, state: GoldenRecord | None) -> bool:
        """Whether an updated record still matches the rest of its golden record: one of them on
        its own, or all of them together (as :meth:`_candidates` scores a golden record)."""
        if state is None or self.spec is None:
            return True
        others = [r.source_ref for r in state.active_sources if r.source_ref != mine.ref]
        if not others:
            return True
        scores: list[MatchScore] = []
        for ref in others:
            if ref in mine.linked:
                return True
            other = view.summary(ref)
            if other is None or not other.features:
                return True  # nothing to compare with: keep the link
            score = compare(self.spec, mine.features, other.features, early_exit=True)
            view.out.comparisons += 1
            if score.verdict is Verdict.MATCH:
                return True
            if not score.ruled_out:
                scores.append(score)
        return len(scores) > 1 and combine(self.spec, scores).verdict is Verdict.MATCH

    def _bridge(
        self, view: _View, mine: Summary, golden_id: str, cause: Cause, at: dt.datetime
    ) -> None:
        """After an update of matching attributes: merge golden records the record now matches."""
        found = self._candidates(view, mine, exclude={golden_id})
        ordered = sorted(found.values(), key=lambda c: (-c.score.score, c.golden_id))
        matches = [
            c.golden_id
            for c in self._matches(view, mine, ordered)
            if self._compatible(view, golden_id, c.golden_id)
        ]
        if not matches:
            return
        group = [golden_id, *sorted(matches)]
        survivor = self._survivor(view, group)
        for other in group:
            if other != survivor:
                self._merge(view, survivor, other, cause, at)

    def _place(
        self,
        view: _View,
        change: CandidateChange,
        mine: Summary,
        cause: Cause,
        at: dt.datetime,
        exclude: set[str],
        split: bool,
    ) -> None:
        """Link a record without a golden record (new, or just ``split`` out of one because an
        update stopped matching it) to where it belongs."""
        found = self._candidates(view, mine, exclude)
        ordered = sorted(found.values(), key=lambda c: (-c.score.score, c.golden_id))
        matches = self._matches(view, mine, ordered)
        ref = change.source_ref
        if matches:
            group = [c.golden_id for c in matches]
            target = self._survivor(view, group)
            best = next(c for c in matches if c.golden_id == target)
            link = self._link_for(
                ref,
                LinkMethod.RULE if best.score.rule else LinkMethod.MATCHED,
                at,
                score=round(best.score.score, 4),
                matched_ref=best.ref,
                blocking_key=best.key,
                rule=best.score.rule,
                contributions=_contributions(best.score),
            )
            outcome = apply_change(self.entity, view.golden(target), change, target, link)
            if isinstance(outcome, Rejected):  # cannot happen: the record is not in the target
                view.out.rejected = outcome
                return
            view.record(outcome, target)
            view.put_summary(replace(mine, golden_id=target))
            for other in group:
                if other != target:
                    self._merge(view, target, other, cause, at)
            return
        new_id = self._new_id(view, ref)
        link = self._link_for(ref, LinkMethod.SPLIT if split else LinkMethod.CREATED, at)
        state = view.golden(new_id)  # a remembered delete (version 0), or None
        outcome = apply_change(self.entity, state, change, new_id, link)
        if isinstance(outcome, Rejected):
            view.out.rejected = outcome
            return
        view.record(outcome, new_id)
        view.put_summary(replace(mine, golden_id=new_id))
        # reviews: candidates scoring a review, and matches left unlinked as ambiguous
        reviews = [c for c in ordered if c.score.verdict is not Verdict.NO_MATCH]
        reviews = reviews[:MAX_REVIEWS_PER_RECORD]
        for candidate in reviews:
            if self._golden_forbidden(view, mine, candidate.golden_id):
                continue
            view.out.reviews.append(candidate.proposed(self.entity.name, ref, new_id, at))

    def _move(
        self,
        view: _View,
        from_id: str,
        to_id: str,
        ref: str,
        link: Link,
        cause: Cause,
        at: dt.datetime,
    ) -> None:
        """Move a source record from one golden record to another (a steward's link)."""
        record = self._take_out(view, from_id, ref, cause, at)
        if record is None:
            return
        target = view.golden(to_id)
        assert target is not None
        sources = tuple(sorted((*target.sources, record), key=lambda r: r.source_ref))
        links = with_link(target.links, link)
        view.record(
            rebuild(self.entity, target, to_id, sources, target.overrides, cause, at, links), to_id
        )
        self._repoint(view, ref, to_id)

    def _delete(self, view: _View, change: CandidateChange, known: Summary | None) -> Resolution:
        out = view.out
        ref = change.source_ref
        golden_id = known.golden_id if known is not None else self._new_id(view, ref)
        state = view.golden(golden_id)
        outcome = apply_change(self.entity, state, change, golden_id)
        if isinstance(outcome, Rejected):
            out.rejected = outcome
            return out
        if isinstance(outcome, Unchanged) and outcome.why == "duplicate":
            return out
        view.record(outcome, golden_id)
        base = known or Summary(ref=ref, golden_id=golden_id)
        view.put_summary(replace(base, golden_id=golden_id, active=False))
        return out

    # -- steward commands on identity ----------------------------------------------------------

    def link(
        self,
        ws: Workspace,
        ref_a: str,
        ref_b: str,
        command_id: str,
        at: dt.datetime,
        cause: Cause,
    ) -> Resolution:
        """Force two source records into one golden record."""
        out = Resolution()
        view = _View(ws, out)
        a, b = view.summary(ref_a), view.summary(ref_b)
        missing = [r for r, s in ((ref_a, a), (ref_b, b)) if s is None or not s.active]
        if missing:
            out.rejected = Rejected(
                (Reason("UNKNOWN_SOURCE_RECORD", f"no active source record {missing[0]}"),)
            )
            return out
        assert a is not None and b is not None
        view.put_summary(
            replace(a, linked=_add(a.linked, ref_b), not_match=_drop(a.not_match, ref_b))
        )
        view.put_summary(
            replace(b, linked=_add(b.linked, ref_a), not_match=_drop(b.not_match, ref_a))
        )
        if a.golden_id == b.golden_id:
            return out
        survivor = self._survivor(view, [a.golden_id, b.golden_id])
        loser = b.golden_id if survivor == a.golden_id else a.golden_id
        moved_ref = ref_b if survivor == a.golden_id else ref_a
        kept_ref = ref_a if moved_ref == ref_b else ref_b
        loser_state = view.golden(loser)
        assert loser_state is not None
        if len(loser_state.active_sources) > 1 and (a.alone or b.alone):
            # a split-out record is linked on its own, not with the golden record it sits in
            link = self._link_for(
                moved_ref, LinkMethod.STEWARD_LINK, at, matched_ref=kept_ref, command_id=command_id
            )
            self._move(view, loser, survivor, moved_ref, link, cause, at)
            return out
        link = self._link_for(
            moved_ref,
            LinkMethod.STEWARD_LINK,
            at,
            matched_ref=kept_ref,
            command_id=command_id,
            merged_from=loser,
        )
        self._merge(view, survivor, loser, cause, at, relink=link)
        return out

    def split(
        self,
        ws: Workspace,
        golden_id: str,
        ref: str,
        command_id: str,
        at: dt.datetime,
        cause: Cause,
    ) -> Resolution:
        """Move a source record out of its golden record for good (until a steward links it)."""
        out = Resolution()
        view = _View(ws, out)
        summary = view.summary(ref)
        state = view.golden(golden_id)
        if summary is None or state is None or summary.golden_id != golden_id:
            out.rejected = Rejected(
                (Reason("NOT_IN_GOLDEN", f"{ref} is not a source record of {golden_id}"),)
            )
            return out
        if len(state.active_sources) < 2:
            out.rejected = Rejected(
                (Reason("NOTHING_TO_SPLIT", f"{golden_id} has no other source record"),)
            )
            return out
        others = tuple(r.source_ref for r in state.active_sources if r.source_ref != ref)
        view.put_summary(replace(summary, alone=True, linked=()))
        for other_ref in others:
            other = view.summary(other_ref)
            if other is not None and ref in other.linked:
                view.put_summary(replace(other, linked=_drop(other.linked, ref)))
        link = self._link_for(ref, LinkMethod.SPLIT, at, command_id=command_id)
        self._split(view, golden_id, ref, cause, at, link)
        return out

    def not_match(
        self,
        ws: Workspace,
        ref_a: str,
        ref_b: str,
        command_id: str,
        at: dt.datetime,
        cause: Cause,
        undo: bool = False,
    ) -> Resolution:
        """Record that two source records are different entities (or take that back)."""
        out = Resolution()
        view = _View(ws, out)
        a, b = view.summary(ref_a), view.summary(ref_b)
        missing = [r for r, s in ((ref_a, a), (ref_b, b)) if s is None]
        if missing or ref_a == ref_b:
            out.rejected = Rejected(
                (
                    Reason(
                        "UNKNOWN_SOURCE_RECORD",
                        f"no source record {missing[0] if missing else ref_a} to compare",
                    ),
                )
            )
            return out
        assert a is not None and b is not None
        if undo:
            a = replace(a, not_match=_drop(a.not_match, ref_b))
            b = replace(b, not_match=_drop(b.not_match, ref_a))
            view.put_summary(a)
            view.put_summary(b)
            self._reconsider(view, a, b, cause, at)
            return out
        view.put_summary(
            replace(a, not_match=_add(a.not_match, ref_b), linked=_drop(a.linked, ref_b))
        )
        view.put_summary(
            replace(b, not_match=_add(b.not_match, ref_a), linked=_drop(b.linked, ref_a))
        )
        if a.golden_id != b.golden_id:
            return out
        state = view.golden(a.golden_id)
        assert state is not None
        # the record that joined later leaves; the one that created the golden record stays
        order = {k.source_ref: (k.decided_at, k.source_ref) for k in state.links}
        leaving = max((ref_a, ref_b), key=lambda r: order.get(r, (at, r)))
        link = self._link_for(leaving, LinkMethod.SPLIT, at, command_id=command_id)
        self._split(view, a.golden_id, leaving, cause, at, link)
        return out

    def _reconsider(
        self, view: _View, mine: Summary, other: Summary, cause: Cause, at: dt.datetime
    ) -> None:
        """After a "not a match" is taken back: decide the pair again, as if ``mine`` had just
        been resolved against ``other``'s golden record (scored as a whole). A match merges the
        two golden records (unless a ``no_match`` rule separates them); a review proposes the
        pair to a steward; anything else leaves them apart."""
        if self.spec is None or mine.golden_id == other.golden_id:
            return
        if not (mine.indexed and other.indexed) or mine.alone or other.alone:
            return
        if self._golden_forbidden(view, mine, other.golden_id):
            return
        state = view.golden(other.golden_id)
        if state is None:
            return
        members = [
            member
            for record in state.active_sources
            if (member := view.summary(record.source_ref)) is not None and member.features
        ]
        scored = self._score_against(view, mine, members)
        if scored is None:
            return
        total = scored[1]
        if total.verdict is Verdict.MATCH and self._compatible(
            view, mine.golden_id, other.golden_id
        ):
            survivor = self._survivor(view, [mine.golden_id, other.golden_id])
            loser = other.golden_id if survivor == mine.golden_id else mine.golden_id
            self._merge(view, survivor, loser, cause, at)
        elif total.verdict is not Verdict.NO_MATCH:
            candidate = _Candidate(other.ref, other.golden_id, total, None)
            view.out.reviews.append(
                candidate.proposed(self.entity.name, mine.ref, mine.golden_id, at)
            )

    def erase_summaries(self, ws: Workspace, state: GoldenRecord) -> dict[str, Summary]:
        """After an erasure: forget the match features of the golden record's source records."""
        updates = {}
        for record in state.sources:
            summary = ws.summary(record.source_ref)
            if summary is not None:
                updates[record.source_ref] = replace(summary, features={}, keys=(), active=False)
        return updates


def _add(items: tuple[str, ...], item: str) -> tuple[str, ...]:
    return items if item in items else tuple(sorted((*items, item)))


def _drop(items: tuple[str, ...], item: str) -> tuple[str, ...]:
    return tuple(i for i in items if i != item)
