"""``mdhub lag`` as a user meets it, over a scripted offset source (no broker)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from mdhub.cli import main
from mdhub.errors import KafkaUnavailableError
from mdhub.ops.lag import GroupInfo, LagSnapshot, OffsetSample, PartitionKey

SOURCE = "mdhub.customer.source.v1"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class FakeSource:
    """Stands in for KafkaLagSource: the worker falls behind, an external group is idle."""

    instances: list[FakeSource] = []
    reachable = True

    def __init__(self, kafka: Any, namespace: str, *, groups: Any = (), **_: Any) -> None:
        self.namespace = namespace
        self.groups = list(groups)
        self.calls = 0
        self.closed = False
        FakeSource.instances.append(self)

    def __enter__(self) -> FakeSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sample(self) -> LagSnapshot:
        if not FakeSource.reachable:
            raise KafkaUnavailableError("Kafka at 127.0.0.1:9092 is not reachable (simulated)")
        at = 1000.0 + self.calls
        self.calls += 1
        offsets = {
            PartitionKey("mdhub-worker", SOURCE, 0): OffsetSample(
                at=at,
                log_end=100 + 50 * self.calls,
                committed=10 * self.calls,
                committed_timestamp=at - 12.5,
                owned=True,
            ),
            PartitionKey("mdhub-worker", SOURCE, 1): OffsetSample(
                at=at, log_end=40, committed=40, owned=True
            ),
        }
        groups = {"mdhub-worker": GroupInfo("STABLE", 1)}
        wanted = set(self.groups)
        if wanted:
            offsets = {k: v for k, v in offsets.items() if k.group in wanted}
        return LagSnapshot(at, offsets, groups)

    def close(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def fake_source(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeSource.instances = []
    FakeSource.reachable = True
    monkeypatch.setattr("mdhub.ops.lagsource.KafkaLagSource", FakeSource)


def test_json_reports_every_partition_after_several_readings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["lag", "--json", "--interval", "0.01"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["namespace"], doc["readings"], doc["window_s"]) == ("mdhub", 3, 60.0)
    (group,) = doc["groups"]
    assert (group["group"], group["status"], group["state"], group["members"]) == (
        "mdhub-worker", "WARN", "STABLE", 1,
    )  # fmt: skip
    p0, p1 = group["partitions"]
    assert (p0["current_offset"], p0["log_end_offset"], p0["lag"]) == (30, 250, 220)
    assert p0["lag_seconds"] == 12.5
    assert (p0["consume_rate"], p0["produce_rate"]) == (10.0, 50.0)
    assert (p0["eta_seconds"], p0["catching_up"], p0["status"]) == (None, False, "WARN")
    assert (p1["lag"], p1["status"], p1["eta_seconds"], p1["catching_up"]) == (0, "OK", 0.0, True)
    assert FakeSource.instances[0].closed


def test_the_table_has_kafkas_columns_plus_ours_and_a_status_line_per_group(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["lag", "--interval", "0.01", "--samples", "2"]) == 0
    out = _ANSI.sub("", capsys.readouterr().out)
    header = next(line for line in out.splitlines() if line.startswith("GROUP"))
    assert header.split() == [
        "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
        "LAG-SECONDS", "CONSUME/s", "PRODUCE/s", "ETA", "STATUS",
    ]  # fmt: skip
    row = next(line for line in out.splitlines() if f"{SOURCE}  " in line and " 0 " in line)
    assert row.split() == [
        "mdhub-worker", SOURCE, "0", "20", "200", "180", "12.5", "10.0", "50.0", "never", "WARN",
    ]  # fmt: skip
    status_line = next(line for line in out.splitlines() if line.startswith("mdhub-worker WARN"))
    assert "lag 180" in status_line
    assert "lag grew from 140 to 180" in status_line


def test_a_named_group_without_offsets_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lag", "--group", "ext-nobody", "--samples", "1", "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["missing_groups"] == ["ext-nobody"]
    assert "ext-nobody has no committed offsets" in " ".join(captured.err.split())
    assert FakeSource.instances[0].groups == ["ext-nobody"]


def test_unreachable_kafka_is_a_clear_message_and_exit_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    FakeSource.reachable = False
    assert main(["lag", "--samples", "1"]) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert "unavailable: Kafka at 127.0.0.1:9092 is not reachable" in err


def test_watch_json_prints_one_document_per_refresh_until_interrupted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr("mdhub.commands.lag.time.sleep", sleep)
    assert main(["lag", "--watch", "--json", "--interval", "2"]) == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["readings"] for d in docs] == [1, 2, 3]
    assert docs[0]["groups"][0]["status"] == "OK"  # first reading: no trend yet
    assert docs[-1]["groups"][0]["status"] == "WARN"
    assert all(0 <= n <= 2 for n in naps)


def test_watch_keeps_going_while_kafka_is_down(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[float] = []

    def sleep(seconds: float) -> None:
        calls.append(seconds)
        FakeSource.reachable = False
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("mdhub.commands.lag.time.sleep", sleep)
    assert main(["lag", "--watch", "--json"]) == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert "error" not in first
    assert "not reachable" in second["error"]
    assert second["groups"][0]["status"] == "ERR"


def test_help_explains_the_columns_and_the_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["lag", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for word in ("LAG-SECONDS", "CONSUME/s", "ETA", "WARN", "STALL", "STOP", "REWIND", "ERR"):
        assert word in out


@pytest.mark.parametrize("bad", [["--interval", "0"], ["--window", "-1"], ["--samples", "0"]])
def test_bad_numbers_are_refused(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["lag", *bad])
    assert exit_info.value.code == 2
