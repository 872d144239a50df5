"""A data steward's side of identity resolution, shared by the CLI and the API.

* Commands: :func:`new_command` builds a :class:`~mdhub.domain.commands.StewardCommand` (with the
  fields its action needs, see :data:`REQUIRED_FIELDS`), :class:`CommandSender` publishes it to
  the entity's commands topic and waits for Kafka's acknowledgement.
* Reading: :func:`follow_merges` follows the redirects that merged golden records leave in the
  read views; :func:`explain_links` says, per source record, why it belongs to its golden record;
  :func:`where_now` says where a potential match's two records are now.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from mdhub.cache.views import GoldenCache
from mdhub.domain.commands import Action, StewardCommand
from mdhub.domain.records import Value
from mdhub.errors import KafkaUnavailableError, PublishError
from mdhub.naming import Stage, topic_name
from mdhub.serde.catalog import AvroCodec, SchemaCatalog
from mdhub.serde.mapping import command_to_avro
from mdhub.settings import KafkaSettings, Settings

__all__ = [
    "COMMAND_SCHEMA",
    "MAX_REDIRECTS",
    "REQUIRED_FIELDS",
    "CommandProducer",
    "CommandSender",
    "Redirect",
    "by_weight",
    "command_key",
    "decision_command",
    "explain_links",
    "explanation",
    "follow_merges",
    "link_reason",
    "new_command",
    "parse_ref",
    "where_now",
]

#: The Avro type of the commands topic.
COMMAND_SCHEMA: Final = "mdhub.common.StewardCommand"
#: Most ``merged_into`` hops followed to reach a surviving golden record.
MAX_REDIRECTS: Final = 10

#: The fields each action needs besides the entity (what the worker refuses a command without).
REQUIRED_FIELDS: Final[Mapping[Action, tuple[str, ...]]] = {
    Action.OVERRIDE: ("golden_id", "attribute", "value"),
    Action.CLEAR_OVERRIDE: ("golden_id", "attribute"),
    Action.ERASE: ("golden_id",),
    Action.LINK: ("source_ref", "other_ref"),
    Action.SPLIT: ("golden_id", "source_ref"),
    Action.MERGE: ("golden_id", "other_golden_id"),
    Action.NOT_MATCH: ("source_ref", "other_ref"),
    Action.UNDO_NOT_MATCH: ("source_ref", "other_ref"),
    Action.ACCEPT_MATCH: ("pair_id", "source_ref", "other_ref"),
    Action.REJECT_MATCH: ("pair_id", "source_ref", "other_ref"),
}


# -- commands ---------------------------------------------------------------------------------


def parse_ref(text: str) -> str:
    """Check a source-record reference ``<source>:<source_key>`` and return it.

    Raises:
        ValueError: it has no ``:``, or an empty source or key.
    """
    source, sep, key = text.partition(":")
    if not sep or not source.strip() or not key:
        raise ValueError(f"{text!r} is not a source record reference <source>:<source_key>")
    return text


def new_command(
    entity: str,
    action: Action,
    *,
    golden_id: str = "",
    source_ref: str | None = None,
    other_ref: str | None = None,
    other_golden_id: str | None = None,
    pair_id: str | None = None,
    attribute: str | None = None,
    value: Value | None = None,
    issued_by: str | None = None,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> StewardCommand:
    """Build a steward command with a new id, checking that the action has what it needs.

    Args:
        golden_id: the golden record; empty for commands about source records only (link,
            not_match, undo_not_match, accept_match, reject_match).
        now: when it is issued (default: now, UTC, whole seconds).

    Raises:
        ValueError: a field :data:`REQUIRED_FIELDS` names for ``action`` is missing, a reference
            is not ``<source>:<source_key>``, or the two records or golden ids are the same.
    """
    given: dict[str, object] = {
        "golden_id": golden_id or None,
        "source_ref": source_ref or None,
        "other_ref": other_ref or None,
        "other_golden_id": other_golden_id or None,
        "pair_id": pair_id or None,
        "attribute": attribute or None,
        "value": value,
    }
    missing = [name for name in REQUIRED_FIELDS[action] if given[name] is None]
    if missing:
        raise ValueError(f"{action.value} needs {' and '.join(missing)}")
    for ref in (source_ref, other_ref):
        if ref:
            parse_ref(ref)
    if source_ref and source_ref == other_ref:
        raise ValueError(f"{action.value} needs two different source records, got {source_ref}")
    if action is Action.MERGE and golden_id == other_golden_id:
        raise ValueError(f"merge needs two different golden records, got {golden_id}")
    issued = now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    return StewardCommand(
        command_id=str(uuid.uuid4()),
        entity=entity,
        golden_id=golden_id,
        action=action,
        issued_at=issued,
        attribute=attribute,
        value=value,
        issued_by=issued_by,
        reason=reason,
        source_ref=source_ref,
        other_ref=other_ref,
        other_golden_id=other_golden_id,
        pair_id=pair_id,
    )


def decision_command(
    entity: str,
    pair: Mapping[str, Any],
    *,
    accept: bool,
    issued_by: str | None = None,
    reason: str | None = None,
) -> StewardCommand:
    """The ``accept_match`` or ``reject_match`` command deciding a potential match (a review doc)."""
    return new_command(
        entity,
        Action.ACCEPT_MATCH if accept else Action.REJECT_MATCH,
        pair_id=str(pair["pair_id"]),
        source_ref=str(pair["ref"]),
        other_ref=str(pair["candidate_ref"]),
        issued_by=issued_by,
        reason=reason,
    )


def command_key(command: StewardCommand) -> bytes:
    """The Kafka key of a command: its golden id, or the first source record it names."""
    return (command.golden_id or command.source_ref or command.pair_id or "").encode()


class CommandProducer(Protocol):
    """What :class:`CommandSender` needs of a producer (:class:`mdhub.kafka.producer.HubProducer`)."""

    def produce(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """Queue one message."""

    def deliver_all(self, timeout: float) -> object:
        """Wait for every queued message; raise ``PublishError`` if one was not delivered."""


class CommandSender:
    """Publishes steward commands to their entity's commands topic and waits for the ack.

    Callable with one command, so it serves as the API's ``send_command``. Each call uses a
    producer of its own: steward commands are few, and so concurrent calls neither wait for each
    other nor see each other's failures (a producer's delivery report is cumulative). A message
    that Kafka has not acknowledged within ``timeout_s`` expires in the producer (it is not sent
    later behind the caller's back) and the call raises.

    Args:
        kafka: how to reach Kafka.
        namespace: the topics' namespace.
        codec: the codec of :data:`COMMAND_SCHEMA`.
        timeout_s: how long one command may wait for Kafka.
        producer_factory: builds the producer (tests pass a fake); default a ``HubProducer``
            whose messages expire after ``timeout_s``.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        namespace: str,
        codec: AvroCodec,
        *,
        timeout_s: float | None = None,
        producer_factory: Callable[[], CommandProducer] | None = None,
    ) -> None:
        self._kafka = kafka
        self._namespace = namespace
        self._codec = codec
        self._timeout_s = timeout_s if timeout_s is not None else kafka.request_timeout_s * 3
        self._factory = producer_factory or self._hub_producer

    @classmethod
    def from_settings(
        cls, settings: Settings, catalog: SchemaCatalog, *, timeout_s: float | None = None
    ) -> CommandSender:
        """A sender for the hub the settings describe.

        Raises:
            SchemaError: the catalog has no :data:`COMMAND_SCHEMA`.
        """
        return cls(
            settings.kafka, settings.namespace, catalog.codec(COMMAND_SCHEMA), timeout_s=timeout_s
        )

    def _hub_producer(self) -> CommandProducer:
        from mdhub.kafka.producer import HubProducer

        expiry_ms = max(1000, int(self._timeout_s * 1000))
        return HubProducer(self._kafka, **{"message.timeout.ms": expiry_ms})

    def __call__(self, command: StewardCommand) -> None:
        """Send one command and wait until Kafka has it.

        Raises:
            KafkaUnavailableError: Kafka did not take it in time (retry later; a command sent
                twice is harmless).
            PublishError: Kafka refused it (e.g. the commands topic does not exist).
        """
        topic = topic_name(self._namespace, command.entity, Stage.COMMANDS)
        value = self._codec.encode(command_to_avro(command))
        producer = self._factory()
        try:
            producer.produce(topic, command_key(command), value)
            # a little longer than the message's own expiry, so it is delivered or failed by then
            producer.deliver_all(self._timeout_s + 1.0)
        except PublishError as exc:
            raise self._translated(exc, command, topic) from exc

    def _translated(
        self, exc: PublishError, command: StewardCommand, topic: str
    ) -> PublishError | KafkaUnavailableError:
        what = f"steward command {command.command_id} ({command.action.value})"
        if "unknown topic" in str(exc).lower():
            return PublishError(
                f"Kafka at {self._kafka.bootstrap_servers} has no topic {topic} for {what}: "
                f"{exc}; create it with `mdhub topics ensure`"
            )
        return KafkaUnavailableError(
            f"Kafka at {self._kafka.bootstrap_servers} did not take {what} within "
            f"{self._timeout_s:.0f}s ({exc}); check it with `mdhub stack status`"
        )


# -- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Redirect:
    """Where following ``merged_into`` from a golden id led (see :func:`follow_merges`).

    Attributes:
        doc: the surviving golden record, or ``None`` (unknown id, a redirect to a record that is
            gone, or a chain longer than :data:`MAX_REDIRECTS`).
        path: the golden ids visited, the requested one first, the survivor (or the missing
            one) last.
        too_long: the chain had more than :data:`MAX_REDIRECTS` hops (or a loop).
    """

    doc: dict[str, Any] | None
    path: tuple[str, ...]
    too_long: bool = False

    @property
    def requested(self) -> str:
        """The golden id asked for."""
        return self.path[0]

    @property
    def redirected(self) -> bool:
        """Whether the requested record was merged into another one."""
        return len(self.path) > 1


def follow_merges(
    cache: GoldenCache, entity: str, golden_id: str, *, max_hops: int = MAX_REDIRECTS
) -> Redirect:
    """Read a golden record, following ``merged_into`` while it is a ``merged`` redirect.

    Raises:
        RedisUnavailableError: Redis cannot be reached.
    """
    path = [golden_id]
    doc = cache.get_golden(entity, golden_id)
    while doc is not None and doc.get("status") == "merged" and doc.get("merged_into"):
        target = str(doc["merged_into"])
        if len(path) > max_hops or target in path:
            return Redirect(None, (*path, target), too_long=True)
        path.append(target)
        doc = cache.get_golden(entity, target)
    return Redirect(doc, tuple(path))


def where_now(
    cache: GoldenCache, entity: str, pairs: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Potential matches with where their two source records are now (the xref view, read in
    one round trip for all of them).

    Adds ``golden_id_now`` and ``candidate_golden_id_now`` (``None`` when the read views do not
    know the record, e.g. deleted) and ``same_golden_now``: both records are in one golden record
    now (a later match, merge or steward link joined them since the pair was found), so
    accepting the pair changes nothing.

    Raises:
        RedisUnavailableError: Redis cannot be reached.
    """

    def record(ref: Any) -> tuple[str, str]:
        source, _, key = str(ref).partition(":")
        return source, key

    refs = [record(pair.get(field)) for pair in pairs for field in ("ref", "candidate_ref")]
    found = cache.get_xrefs(entity, refs)
    out: list[dict[str, Any]] = []
    for i, pair in enumerate(pairs):
        mine, theirs = found[2 * i], found[2 * i + 1]
        out.append(
            {
                **pair,
                "golden_id_now": mine,
                "candidate_golden_id_now": theirs,
                "same_golden_now": mine is not None and mine == theirs,
            }
        )
    return out


def _number(value: float, signed: bool = False) -> str:
    text = f"{value:+.2f}" if signed else f"{value:.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _contribution_text(c: Mapping[str, Any]) -> str:
    notes = [str(c.get("method") or "?")]
    similarity = c.get("similarity")
    if c.get("detail"):
        notes.append(str(c["detail"]))
    elif similarity is None:
        notes.append("no value")
    elif 0.0 < similarity < 1.0:
        notes.append(f"similarity {_number(similarity)}")
    return f"{c.get('attribute')} {_number(float(c.get('weight') or 0.0), signed=True)} ({', '.join(notes)})"


def by_weight(contributions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The contributions, largest part in the score (in absolute value) first."""
    return sorted((dict(c) for c in contributions), key=lambda c: -abs(float(c.get("weight") or 0)))


def link_reason(link: Mapping[str, Any]) -> str:
    """One line saying why a source record belongs to its golden record (a JSON link)."""
    method = link.get("method")
    command = link.get("command_id")
    block = f" (found by block {link['blocking_key']})" if link.get("blocking_key") else ""
    contributions = by_weight(link.get("contributions") or ())
    parts = ", ".join(_contribution_text(c) for c in contributions)
    score = link.get("score")
    if method == "created":
        text = "created this golden record (no candidate reached the match threshold)"
    elif method == "matched":
        scored = f" with score {_number(float(score))}" if score is not None else ""
        text = f"matched {link.get('matched_ref') or 'a source record'}{scored}{block}"
        text += f": {parts}" if parts else ""
    elif method == "rule":
        scored = f", score {_number(float(score))}" if score is not None else ""
        text = f"matched {link.get('matched_ref') or 'a source record'} by rule {link.get('rule')}"
        text += f"{scored}{block}" + (f": {parts}" if parts else "")
    elif method == "steward_link":
        target = f" to {link['matched_ref']}" if link.get("matched_ref") else ""
        text = f"linked{target} by steward command {command or '(unknown)'}"
    elif method == "split":
        text = (
            f"split out by steward command {command}"
            if command
            else "split out into a golden record of its own (it no longer matched the others)"
        )
    else:
        text = "no explanation recorded (linked before identity resolution)"
    if link.get("merged_from"):
        text += f"; came with golden record {link['merged_from']} when it merged into this one"
    return text


def explain_links(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per source record of a golden record (a JSON doc): how and why it was linked.

    Each item has source, source_key, deleted, method, decided_at, score, matched_ref,
    blocking_key, rule, contributions (largest ``|weight|`` first), command_id, merged_from and
    a one-line ``reason``. Source records without a link (records from before identity
    resolution) get ``method`` null.
    """
    links = {(k.get("source"), k.get("source_key")): k for k in doc.get("links") or ()}
    sources = [
        (s.get("source"), s.get("source_key"), bool(s.get("deleted")))
        for s in doc.get("sources") or ()
    ]
    seen = {(source, key) for source, key, _ in sources}
    sources += [(source, key, False) for source, key in links if (source, key) not in seen]
    out: list[dict[str, Any]] = []
    for source, key, deleted in sources:
        link = links.get((source, key), {})
        out.append(
            {
                "source": source,
                "source_key": key,
                "deleted": deleted,
                "method": link.get("method"),
                "decided_at": link.get("decided_at"),
                "score": link.get("score"),
                "matched_ref": link.get("matched_ref"),
                "blocking_key": link.get("blocking_key"),
                "rule": link.get("rule"),
                "contributions": by_weight(link.get("contributions") or ()),
                "command_id": link.get("command_id"),
                "merged_from": link.get("merged_from"),
                "reason": link_reason(link),
            }
        )
    return out


def explanation(entity: str, found: Redirect) -> dict[str, Any]:
    """The explanation of the golden record :func:`follow_merges` found (API and CLI document):
    entity, golden_id (the survivor), version, status, redirected_from and sources
    (:func:`explain_links`)."""
    doc = found.doc or {}
    return {
        "entity": entity,
        "golden_id": found.path[-1],
        "version": doc.get("version"),
        "status": doc.get("status"),
        "redirected_from": found.requested if found.redirected else None,
        "sources": explain_links(doc),
    }
