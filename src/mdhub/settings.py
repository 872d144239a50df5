"""The hub's settings: one tree, read once from ``MDHUB_*`` environment variables and passed down.

Nested sections use ``__``: ``MDHUB_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092``,
``MDHUB_REDIS__URL=redis://127.0.0.1:6379/0``. The entity-model file is ``MDHUB_MODEL``.
Unknown ``MDHUB_*`` keys stop start-up, so a typo never goes unnoticed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from mdhub.errors import ConfigError

__all__ = [
    "ApiSettings",
    "KafkaSettings",
    "RedisSettings",
    "Settings",
    "StackSettings",
    "WorkerSettings",
    "load_settings",
]

_SECTION = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(BaseModel):
    """How to reach Kafka and how the hub's topics are laid out."""

    model_config = _SECTION

    bootstrap_servers: str = "127.0.0.1:9092"
    partitions: int = Field(default=4, ge=1, description="partitions of every hub topic")
    replication_factor: int = Field(default=1, ge=1)
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    request_timeout_s: float = Field(default=10.0, gt=0)
    extra: dict[str, str] = Field(
        default_factory=dict, description="passed through to librdkafka as-is"
    )


class RedisSettings(BaseModel):
    """How to reach Redis."""

    model_config = _SECTION

    url: str = "redis://127.0.0.1:6379/0"
    socket_timeout_s: float = Field(default=2.0, gt=0)


class StackSettings(BaseModel):
    """The local development stack (Kafka and Redis run as child processes, no Docker)."""

    model_config = _SECTION

    state_dir: Path = Path(".mdhub")
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535)
    redis_port: int = Field(default=6379, ge=1, le=65535)
    kafka_home: Path | None = Field(
        default=None, description="a Kafka distribution to use instead of Maven Central jars"
    )
    kafka_version: str = "3.9.2"
    kafka_heap: str = "-Xms512m -Xmx1g"
    kafka_jvm_options: str = Field(
        default="-XX:TieredStopAtLevel=1",
        description=(
            "further options of the broker's JVM; the default compiles with the quick (C1) "
            "compiler only, which on a 2-CPU machine halved the broker's CPU time during the "
            "100,000-change benchmark (6.6-7.7 s instead of 11-12 s, most of it the optimizing "
            "compiler's); an empty value keeps the JVM's default"
        ),
    )
    install_missing: bool = Field(
        default=True, description="install redis-server with apt-get when it is missing"
    )
    start_timeout_s: float = Field(default=90.0, gt=0)


class WorkerSettings(BaseModel):
    """The stream worker."""

    model_config = _SECTION

    data_dir: Path = Path(".mdhub/worker")
    max_poll_records: int = Field(default=2000, ge=1)
    # Each batch ends with two waits for Kafka (outputs, then state); with a backlog, batches of
    # 2,000 instead of 1,000 ran `mdhub evaluate --people 10000` at 1,776-1,957 messages/s (three
    # runs) instead of 1,701-1,827 (three). The window keeps batches small when inputs trickle in.
    batch_size: int = Field(default=2000, ge=1)
    batch_window_s: float = Field(default=0.05, gt=0)
    commit_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="how often the worker commits the offsets of the inputs it has finished",
    )
    max_payload_bytes: int = Field(default=1_048_576, ge=1024)
    metrics_port: int = Field(
        default=9464, ge=0, le=65535, description="Prometheus /metrics of the worker; 0 disables"
    )
    stall_timeout_s: float = Field(
        default=60.0,
        ge=0,
        description="exit (code 75, for a supervisor to restart the worker) when inputs wait on "
        "its resolve partitions and no batch started for this long; 0 never",
    )
    parse_ahead: bool = Field(
        default=True,
        description="parse the phone numbers and compute the match keys of each batch's changes "
        "in a helper process, ahead of the worker's main thread (it took 24-45 us per change off "
        "that thread in the benchmark; the results are the same); uses some of a second CPU",
    )
    router_margin_ms: int = Field(
        default=50,
        ge=0,
        le=60_000,
        description="how long after its broker time an input may still be overtaken by one on "
        "another partition (broker clock skew and replication delay); the router holds inputs "
        "this long before it fixes their order",
    )


class ApiSettings(BaseModel):
    """The REST API."""

    model_config = _SECTION

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # the defaults of mdhub.ops.monitor: several commit intervals of a typical consumer
    lag_window_s: float = Field(
        default=60.0, gt=0, description="window of the consumer-lag status (/metrics, /dashboard)"
    )
    lag_interval_s: float = Field(default=5.0, gt=0, description="seconds between two lag polls")


class Settings(BaseSettings):
    """Every setting of the hub. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="MDHUB_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        populate_by_name=True,
    )

    namespace: str = Field(
        default="mdhub",
        pattern=r"^[a-z][a-z0-9_]*$",
        description="first segment of every topic, group and Redis key",
    )
    model_file: Path = Field(
        default=Path("config/model.yaml"),
        validation_alias=AliasChoices("MDHUB_MODEL", "model_file"),
    )
    schemas_dir: Path = Path("schemas")
    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    stack: StackSettings = StackSettings()
    worker: WorkerSettings = WorkerSettings()
    api: ApiSettings = ApiSettings()


def _unknown_env_keys() -> list[str]:
    known = {name.upper() for name in Settings.model_fields} | {"MODEL"}
    return sorted(
        key
        for key in os.environ
        if key.startswith("MDHUB_") and key[6:].split("__", 1)[0] not in known
    )


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment (and ``overrides``), or raise a readable error.

    Raises:
        ConfigError: a setting is unknown or invalid; the message names it and what is accepted.
    """
    unknown = _unknown_env_keys()
    if unknown:
        raise ConfigError(
            "unknown setting(s) in the environment: "
            + ", ".join(unknown)
            + f"; accepted: MDHUB_MODEL and MDHUB_<{'|'.join(k.upper() for k in Settings.model_fields)}>"
        )
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = "MDHUB_" + "__".join(str(p).upper() for p in err["loc"])
            problems.append(f"{where}: {err['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from exc
