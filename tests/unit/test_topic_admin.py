"""ensure_topics against a fake admin client: what it creates, and that it waits for metadata."""

from __future__ import annotations

from typing import Any

import pytest

from mdhub.kafka import admin
from mdhub.settings import KafkaSettings
from mdhub.topology import Stage, TopicSpec

KAFKA = KafkaSettings(bootstrap_servers="127.0.0.1:1", request_timeout_s=5)
SPECS = [
    TopicSpec(f"t.{n}", "customer", Stage.SOURCE, 4, 1, "a topic", {"retention.ms": "-1"})
    for n in ("a", "b")
]


class Done:
    def result(self) -> Any:
        return None


class Config:
    def __init__(self, value: str) -> None:
        self.value = value


class Described:
    def result(self) -> dict[str, Config]:
        return {"retention.ms": Config("-1")}


class FakeAdmin:
    def __init__(self) -> None:
        self.created: list[str] = []

    def create_topics(self, topics: list[Any], request_timeout: float) -> dict[str, Done]:
        self.created += [t.topic for t in topics]
        return {t.topic: Done() for t in topics}

    def describe_configs(self, resources: list[Any], request_timeout: float) -> dict[Any, Any]:
        return {resource: Described() for resource in resources}


def test_created_topics_are_waited_for_until_the_metadata_lists_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeAdmin()
    # the first two metadata requests do not list the new topics yet (KRaft propagates them)
    answers = [{}, {}, {"t.a": 4}, {"t.a": 4, "t.b": 4}]
    calls: list[int] = []

    def existing(kafka: KafkaSettings, timeout: float | None = None) -> dict[str, int]:
        calls.append(1)
        return answers[min(len(calls) - 1, len(answers) - 1)]

    monkeypatch.setattr(admin, "_admin", lambda kafka: fake)
    monkeypatch.setattr(admin, "existing_topics", existing)
    monkeypatch.setattr(admin.time, "sleep", lambda seconds: None)

    reports = admin.ensure_topics(KAFKA, SPECS)

    assert fake.created == ["t.a", "t.b"]
    assert [(r.name, r.action) for r in reports] == [("t.a", "created"), ("t.b", "created")]
    assert len(calls) == 4  # returned only once the metadata listed both


def test_one_admin_client_per_configuration_is_kept_for_the_process() -> None:
    conf = {
        "bootstrap.servers": "127.0.0.1:1",
        "socket.connection.setup.timeout.ms": 1000,
        "log_level": 0,  # nothing listens there: no connection errors on stderr
    }

    first = admin.shared_admin(conf)

    assert admin.shared_admin(dict(conf)) is first
    assert admin.shared_admin({**conf, "socket.connection.setup.timeout.ms": 2000}) is not first
