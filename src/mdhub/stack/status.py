"""What ``mdhub stack status`` reports about each local server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Report", "ServerStatus", "StackStatus", "silent"]

Report = Callable[[str], None]
"""Receives one line of progress (``"starting Kafka on 127.0.0.1:9092"``)."""


def silent(message: str) -> None:
    """A :data:`Report` that drops every message."""


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """The state of one local server.

    Attributes:
        name: ``"kafka"`` or ``"redis"``.
        running: our pid file names a live process that is still the server we started.
        pid: that process, or ``None``.
        address: ``host:port`` the server listens on (or would).
        reachable: the server answered (Kafka: a metadata request; Redis: PING).
        detail: a human-readable explanation (``"ready"``, ``"not running"``, an error...).
    """

    name: str
    running: bool
    pid: int | None
    address: str
    reachable: bool
    detail: str

    @property
    def ready(self) -> bool:
        """Running and answering."""
        return self.running and self.reachable


@dataclass(frozen=True, slots=True)
class StackStatus:
    """The state of the local stack (Kafka and Redis)."""

    kafka: ServerStatus
    redis: ServerStatus
    started: tuple[
        str, ...
    ] = ()  # the servers ("kafka", "redis") the call that returned it started

    @property
    def ready(self) -> bool:
        """Both servers are running and answering."""
        return self.kafka.ready and self.redis.ready

    @property
    def stopped(self) -> bool:
        """Neither server is running."""
        return not self.kafka.running and not self.redis.running

    @property
    def bootstrap_servers(self) -> str:
        """The Kafka bootstrap address (``MDHUB_KAFKA__BOOTSTRAP_SERVERS``)."""
        return self.kafka.address

    @property
    def redis_url(self) -> str:
        """A Redis URL for database 0 (``MDHUB_REDIS__URL``)."""
        return f"redis://{self.redis.address}/0"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, as ``mdhub stack status --json`` prints it."""
        return {
            "ready": self.ready,
            "bootstrap_servers": self.bootstrap_servers,
            "redis_url": self.redis_url,
            "kafka": asdict(self.kafka),
            "redis": asdict(self.redis),
        }
