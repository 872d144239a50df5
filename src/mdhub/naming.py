"""The one place where names of topics, consumer groups, Redis keys and metrics are built."""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = ["Stage", "group_name", "metric_name", "redis_key", "topic_name"]

_SEGMENT = re.compile(r"^[a-z][a-z0-9_]*$")


class Stage(StrEnum):
    """The stages of an entity's pipeline, each with its own topic."""

    SOURCE = "source"
    REJECTED = "rejected"
    REVIEW = "review"
    GOLDEN = "golden"
    CHANGES = "changes"
    COMMANDS = "commands"
    RESOLVE = "resolve"
    STATE = "state"


def _check(kind: str, value: str) -> str:
    if not _SEGMENT.match(value):
        raise ValueError(f"{kind} {value!r} must match {_SEGMENT.pattern}")
    return value


def topic_name(namespace: str, entity: str, stage: Stage | str, version: int = 1) -> str:
    """Return ``<namespace>.<entity>.<stage>.v<version>``, e.g. ``mdhub.customer.golden.v1``."""
    return f"{namespace}.{_check('entity', entity)}.{Stage(stage).value}.v{version}"


def group_name(namespace: str, component: str) -> str:
    """Return the consumer group of a hub component, e.g. ``mdhub-worker``."""
    return f"{namespace}-{component}"


def redis_key(namespace: str, entity: str, view: str, *ids: str) -> str:
    """Return ``<namespace>:<entity>:<view>:<id>...``, e.g. ``mdhub:customer:golden:<id>``."""
    return ":".join((namespace, entity, view, *ids))


def metric_name(subsystem: str, name: str, unit: str) -> str:
    """Return ``mdhub_<subsystem>_<name>_<unit>``."""
    return f"mdhub_{subsystem}_{name}_{unit}"
