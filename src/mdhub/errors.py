"""The exceptions mdhub raises on purpose.

Every error the hub raises derives from :class:`MdhubError`, so a caller can catch the whole family::

    MdhubError
    ├── ConfigError                 bad settings or entity model; start-up stops with the message
    │   └── ModelError              the entity-model file names a bad key or value
    ├── SchemaError                 the Avro schemas in ``schemas/`` are missing or inconsistent
    ├── DecodeError                 bytes that are not a readable candidate change
    │   └── UnknownFingerprintError single-object header names a schema the catalog lacks
    ├── UnavailableError            a server (Kafka, Redis) cannot be reached: retry later
    │   ├── KafkaUnavailableError
    │   └── RedisUnavailableError
    ├── StackError                  the local Kafka/Redis stack could not be set up or started
    ├── PublishError                records could not be delivered to Kafka
    └── ValidationError             a record breaks the entity model or the Avro contract;
                                    nothing was sent (every problem is listed)

Library exceptions (``KafkaException``, ``redis.RedisError``...) are translated into these at the
adapter edge and never escape it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mdhub.domain.errors import ConfigError, MdhubError, ModelError

if TYPE_CHECKING:
    from mdhub.domain.records import Reason

__all__ = [
    "ConfigError",
    "DecodeError",
    "KafkaUnavailableError",
    "MdhubError",
    "ModelError",
    "PublishError",
    "RedisUnavailableError",
    "SchemaError",
    "StackError",
    "UnavailableError",
    "UnknownFingerprintError",
    "ValidationError",
]


class SchemaError(MdhubError):
    """The Avro schemas are missing or do not agree with the entity model."""


class DecodeError(MdhubError):
    """Bytes could not be decoded as a record of the expected schema.

    Attributes:
        code: a stable, machine-readable reason code (for the rejected topic).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class UnknownFingerprintError(DecodeError):
    """The single-object header carries a schema fingerprint the catalog does not know."""


class UnavailableError(MdhubError):
    """A server cannot be reached right now; the operation may be retried."""


class KafkaUnavailableError(UnavailableError):
    """Kafka cannot be reached."""


class RedisUnavailableError(UnavailableError):
    """Redis cannot be reached."""


class StackError(MdhubError):
    """The local Kafka/Redis stack could not be prepared, started or stopped."""


class PublishError(MdhubError):
    """Records could not be delivered to Kafka."""


class ValidationError(MdhubError):
    """A record breaks the entity model or the Avro contract, so it was not sent.

    Attributes:
        reasons: every problem found (not just the first), each with the stable reason code of the
            rejected topic, a readable message and the attribute it concerns (if any).
    """

    def __init__(self, message: str, reasons: Sequence[Reason] = ()) -> None:
        super().__init__(message)
        self.reasons: tuple[Reason, ...] = tuple(reasons)
