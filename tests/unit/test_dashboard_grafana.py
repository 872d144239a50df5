"""The provisioned Grafana dashboard queries metrics the hub really exposes, by their real labels."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mdhub.ops.lag import GroupInfo, LagSnapshot, OffsetSample, PartitionKey
from mdhub.ops.monitor import LagMonitor
from mdhub.stream.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "config" / "grafana" / "dashboards" / "mdhub.json"
DATASOURCE = ROOT / "config" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"

_METRIC = re.compile(r"\bmdhub_[a-z0-9_]+\b")
_GROUPING = re.compile(r"\b(?:by|on)\s*\(([^)]*)\)")
_MATCHERS = re.compile(r"(mdhub_[a-z0-9_]+)\{([^}]*)\}")


class _Source:
    def __init__(self, snapshots: list[LagSnapshot]) -> None:
        self._snapshots = snapshots

    def sample(self) -> LagSnapshot:
        return self._snapshots.pop(0)

    def ping(self, timeout_s: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def _exposed() -> dict[str, set[str]]:
    """Every sample name the API's lag collector and the worker expose, with its labels."""
    key = PartitionKey("mdhub-projector", "mdhub.customer.golden.v1", 0)
    info = {"mdhub-projector": GroupInfo("STABLE", 1)}
    snapshots = [
        LagSnapshot(
            at,
            {key: OffsetSample(at, log_end=end, committed=2, committed_timestamp=9.0, owned=True)},
            info,
        )
        for at, end in ((10.0, 5), (15.0, 9))
    ]
    # two polls five seconds apart: rates and a time to catch up exist
    monitor = LagMonitor(_Source(snapshots), projector_group="mdhub-projector")
    monitor.sample_once()
    monitor.sample_once()
    worker = WorkerMetrics.create()
    worker.consumed.labels("customer").inc()
    worker.outcomes.labels("customer", "rejected").inc()
    worker.rejected.labels("customer", "REQUIRED").inc()
    worker.replayed.labels("customer").inc()
    worker.batch_seconds.labels("customer").observe(0.1)
    worker.end_to_end_seconds.labels("customer").observe(0.1)
    worker.outputs.labels("customer", "golden").inc()
    worker.assigned.set(2)
    found: dict[str, set[str]] = {}
    for registry in (monitor.registry, worker.registry):
        for family in registry.collect():
            for s in family.samples:
                found.setdefault(s.name, set()).update(s.labels)
    return found


EXPOSED = _exposed()


def _panels(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in node.get("panels", []):
        found.append(panel)
        found.extend(_panels(panel))
    return found


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def _targets() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in _panels(_dashboard())
        for target in panel.get("targets", [])
    ]


def test_every_panel_uses_the_provisioned_prometheus_datasource() -> None:
    [source] = yaml.safe_load(DATASOURCE.read_text(encoding="utf-8"))["datasources"]
    assert source["uid"] == "mdhub-prometheus"
    board = _dashboard()
    assert board["uid"] and board["title"]
    for panel in _panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"], panel["title"]
    for variable in board["templating"]["list"]:
        assert variable["datasource"]["uid"] == source["uid"]


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    panels = _panels(_dashboard())
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


@pytest.mark.parametrize(("title", "expr"), _targets())
def test_queries_name_exposed_metrics_and_labels(title: str, expr: str) -> None:
    names = set(_METRIC.findall(expr))
    assert names, f"{title}: no mdhub metric in {expr}"
    unknown = names - set(EXPOSED)
    assert not unknown, f"{title}: not exposed: {sorted(unknown)}"
    labels = set().union(*(EXPOSED[n] for n in names)) | {"le"}
    for grouping in _GROUPING.findall(expr):
        used = {label.strip() for label in grouping.split(",") if label.strip()}
        assert used <= labels, f"{title}: no such label(s) {sorted(used - labels)} in {expr}"
    for name, matchers in _MATCHERS.findall(expr):
        used = {m.split("=")[0].rstrip("!~").strip() for m in matchers.split(",") if m.strip()}
        assert used <= EXPOSED[name], (
            f"{title}: {name} has no label(s) {sorted(used - EXPOSED[name])}"
        )


def test_the_dashboard_covers_lag_status_throughput_and_rejects() -> None:
    exprs = " ".join(expr for _, expr in _targets())
    for metric in (
        "mdhub_consumer_group_lag_messages",
        "mdhub_consumer_group_lag_seconds",
        "mdhub_consumer_group_status_code",
        "mdhub_consumer_partition_status_code",
        "mdhub_worker_outcome_messages_total",
        "mdhub_worker_rejected_reasons_total",
    ):
        assert metric in exprs
    assert re.search(r"rate\(mdhub_worker_outcome_messages_total\{[^}]*\}\[", exprs)
