"""``mdhub steward``: a data steward's decisions, sent through the commands topic."""

from __future__ import annotations

import argparse
import datetime as dt
import uuid
from typing import Any

from mdhub.commands.context import Context
from mdhub.domain.commands import Action, StewardCommand
from mdhub.domain.identity import golden_id_for
from mdhub.domain.model import EntityModel
from mdhub.domain.records import Value
from mdhub.errors import ConfigError
from mdhub.kafka.producer import HubProducer
from mdhub.naming import Stage, topic_name
from mdhub.publishing import convert_value
from mdhub.serde.mapping import command_to_avro
from mdhub.settings import Settings

__all__ = ["register", "send_command"]


def register(sub: Any) -> None:
    """Add ``steward`` with its sub-commands."""
    steward = sub.add_parser(
        "steward",
        help="data-steward decisions: pin an attribute, clear a pin, erase a golden record",
        description="Send a steward command. Commands go through the entity's commands topic, so "
        "every decision is an event that replays; the worker applies it and publishes a new "
        "golden version. A command that cannot be applied lands on the rejected topic with its "
        "reasons (`mdhub tail --entity E --rejected`).",
    )
    actions = steward.add_subparsers(dest="action", metavar="ACTION", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("entity")
        parser.add_argument("golden_id")
        parser.add_argument("--reason", help="why (kept with the command)")
        parser.add_argument("--by", help="who decided (kept with the command)")
        parser.add_argument(
            "--source",
            help="the source that created the golden record (looked up in the read views if omitted)",
        )
        parser.add_argument("--key", help="that source's key (with --source)")

    override = actions.add_parser(
        "override",
        help="pin an attribute's value; it wins over every source until cleared",
        description="Pin ATTRIBUTE of a golden record to VALUE (checked against the model's type "
        "and rules). Its lineage then names the steward command.",
    )
    common(override)
    override.add_argument("attribute")
    override.add_argument("value", help="the value as text (dates ISO 8601, lists a|b|c)")
    override.set_defaults(handler=run_steward, command_action=Action.OVERRIDE)

    clear = actions.add_parser(
        "clear-override",
        help="remove a pin; survivorship over the sources decides again",
        description="Remove the steward's pin of ATTRIBUTE.",
    )
    common(clear)
    clear.add_argument("attribute")
    clear.set_defaults(handler=run_steward, command_action=Action.CLEAR_OVERRIDE)

    erase = actions.add_parser(
        "erase",
        help="erase a golden record: its values, sources, lineage and read views",
        description="Erase a golden record: the golden topic gets a final version without any "
        "attribute and a tombstone, the read views drop it, the worker's state keeps only the fact "
        "of the erasure, and the changes topic records that it happened (no values).",
    )
    common(erase)
    erase.set_defaults(handler=run_steward, command_action=Action.ERASE)


def _home(
    ctx: Context, entity: EntityModel, golden_id: str, source: str | None, key: str | None
) -> str:
    """The ``source:key`` that created the golden record: the commands topic's partitioning key."""
    if source and key:
        if golden_id_for(entity.name, source, key) != golden_id:
            raise ConfigError(f"{source}:{key} did not create golden {entity.name} {golden_id}")
        return f"{source}:{key}"
    from mdhub.cache.views import RedisGoldenCache

    s = ctx.settings
    cache = RedisGoldenCache.from_url(s.redis.url, s.namespace, s.redis.socket_timeout_s)
    doc = cache.get_golden(entity.name, golden_id)
    if doc is None:
        raise ConfigError(
            f"golden {entity.name} {golden_id} is not in the read views; "
            "give --source and --key of the record that created it"
        )
    for ref in doc.get("sources", []):
        if golden_id_for(entity.name, ref["source"], ref["source_key"]) == golden_id:
            return f"{ref['source']}:{ref['source_key']}"
    raise ConfigError(f"cannot tell which source created {golden_id}; give --source and --key")


def send_command(ctx: Context, command: StewardCommand, home: str) -> None:
    """Publish a steward command to the entity's commands topic and wait for Kafka's ack."""
    codec = ctx.catalog.codec("mdhub.common.StewardCommand")
    producer = HubProducer(ctx.settings.kafka)
    topic = topic_name(ctx.settings.namespace, command.entity, Stage.COMMANDS)
    producer.produce(topic, home.encode(), codec.encode(command_to_avro(command)))
    producer.deliver_all(ctx.settings.kafka.request_timeout_s * 3)


def run_steward(args: argparse.Namespace, settings: Settings) -> int:
    """Build, check and send one steward command."""
    ctx = Context(settings)
    entity = ctx.entity(args.entity)
    action: Action = args.command_action
    attribute = getattr(args, "attribute", None)
    value: Value | None = None
    if attribute is not None and attribute not in entity.attributes:
        raise ConfigError(
            f"{attribute!r} is not an attribute of {entity.name}; attributes: {', '.join(entity.attributes)}"
        )
    if action is Action.OVERRIDE:
        assert attribute is not None
        try:
            value = convert_value(entity.attributes[attribute].type, args.value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{attribute}={args.value!r}: {exc}") from exc
    command = StewardCommand(
        command_id=str(uuid.uuid4()),
        entity=entity.name,
        golden_id=args.golden_id,
        action=action,
        issued_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
        attribute=attribute,
        value=value,
        issued_by=args.by,
        reason=args.reason,
    )
    home = _home(ctx, entity, args.golden_id, args.source, args.key)
    send_command(ctx, command, home)
    ctx.console.print(
        f"sent {action.value} command {command.command_id} for {entity.name} {args.golden_id}"
    )
    return 0
