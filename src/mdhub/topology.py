"""The topic registry: every topic of the hub, declared once.

``mdhub topics ensure``, the stream worker and the docs all read :func:`topic_specs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mdhub.domain.model import HubModel
from mdhub.naming import Stage, topic_name

__all__ = ["TopicSpec", "topic_specs"]

_FOREVER = "-1"
_HOUR_MS = str(60 * 60 * 1000)
_WEEK_MS = str(7 * 24 * 60 * 60 * 1000)

_STAGE_CONFIGS: dict[Stage, tuple[str, dict[str, str]]] = {
    Stage.SOURCE: (
        "candidate changes from source systems; kept forever (the original inputs)",
        {
            "cleanup.policy": "delete",
            "retention.ms": _FOREVER,
            "retention.bytes": "-1",
            # the router orders inputs by broker time, the same live and on replay
            "message.timestamp.type": "LogAppendTime",
        },
    ),
    Stage.REJECTED: (
        "rejected inputs: original bytes, coordinates and reasons; kept forever",
        {"cleanup.policy": "delete", "retention.ms": _FOREVER, "retention.bytes": "-1"},
    ),
    Stage.REVIEW: (
        "potential matches for a data steward, and their decisions (key: pair id); kept forever",
        {"cleanup.policy": "delete", "retention.ms": _FOREVER, "retention.bytes": "-1"},
    ),
    Stage.GOLDEN: (
        "golden records, latest version per golden id (the System of Record); compacted",
        {
            "cleanup.policy": "compact",
            # slow readers still see every version written in the last hour
            "min.compaction.lag.ms": _HOUR_MS,
            # tombstones stay a week: longer than any rebuild from offset 0 takes
            "delete.retention.ms": _WEEK_MS,
            "min.cleanable.dirty.ratio": "0.1",
        },
    ),
    Stage.CHANGES: (
        "every accepted golden version with what changed; never compacted, kept forever",
        {"cleanup.policy": "delete", "retention.ms": _FOREVER, "retention.bytes": "-1"},
    ),
    Stage.COMMANDS: (
        "data-steward commands; replayed like data",
        {
            "cleanup.policy": "delete",
            "retention.ms": _FOREVER,
            "retention.bytes": "-1",
            "message.timestamp.type": "LogAppendTime",
        },
    ),
    Stage.RESOLVE: (
        "source changes and steward commands in the router's one order, on the entity's shard "
        "partition (internal; rebuilt from the source and commands topics)",
        {"cleanup.policy": "delete", "retention.ms": _WEEK_MS},
    ),
    Stage.STATE: (
        "the merge stage's state (golden record with its crosswalk); the worker's table changelog",
        {
            "cleanup.policy": "compact",
            "delete.retention.ms": _WEEK_MS,
            "min.cleanable.dirty.ratio": "0.1",
        },
    ),
}


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic the hub needs, with the configs it must have."""

    name: str
    entity: str
    stage: Stage
    partitions: int
    replication_factor: int
    description: str
    config: Mapping[str, str] = field(default_factory=dict)


def topic_specs(
    model: HubModel, namespace: str, partitions: int, replication_factor: int
) -> list[TopicSpec]:
    """Return every topic of every entity type, in a stable order."""
    specs = []
    for entity in model.entities:
        for stage, (description, config) in _STAGE_CONFIGS.items():
            extra = {"min.insync.replicas": "2"} if replication_factor >= 3 else {}
            specs.append(
                TopicSpec(
                    name=topic_name(namespace, entity, stage),
                    entity=entity,
                    stage=stage,
                    partitions=partitions,
                    replication_factor=replication_factor,
                    description=description,
                    config={**config, **extra},
                )
            )
    return specs
