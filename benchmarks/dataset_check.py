"""Check that the benchmark's datasets hold no duplicates, through the real resolve stage in memory.

    python benchmarks/dataset_check.py [--records 5000] [--seed 42]

Generates a run's datasets as ``benchmarks/run.py`` does (main, latency and warm-up keys from one
set of people), feeds them in the order the hub sees them through
:class:`mdhub.stream.replay.LocalResolveStage` (the worker's pipeline, without Kafka) and checks
that every source key started a golden record of its own with the id ``golden_id_for(entity,
source, key)``: nothing matched, merged, rejected or put up for review, and every golden record
ends at the version the dataset expects. No servers needed; a few seconds per 5,000 records.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the sibling modules, also when imported from elsewhere
    sys.path.insert(0, str(HERE))

from mdhub.domain.identity import golden_id_for  # noqa: E402
from mdhub.domain.model import EntityModel  # noqa: E402
from mdhub.domain.records import GoldenStatus  # noqa: E402
from mdhub.modelfile import load_model  # noqa: E402
from mdhub.serde.catalog import SchemaCatalog  # noqa: E402
from mdhub.stream.pipeline import EntityPipeline, Message, Outcome  # noqa: E402
from mdhub.stream.replay import LocalResolveStage  # noqa: E402

from dataset import ENTITY, EPOCH, Dataset, generate_run  # noqa: E402

__all__ = ["APPENDED_MS", "DatasetCheck", "check_datasets", "main"]

REPO = HERE.parent
# Broker append times for the fed messages: a day after the last change of any dataset happened
# (changes are 250 ms apart from EPOCH), so the stage's future-timestamp check never trips.
APPENDED_MS = int((EPOCH + dt.timedelta(days=30)).timestamp() * 1000)


@dataclass(slots=True)
class DatasetCheck:
    """What the resolve stage made of the datasets.

    Attributes:
        records: changes fed.
        keys: distinct source keys in the datasets.
        goldens: golden records the stage holds.
        outcomes: inputs per outcome.
        comparisons: candidate pairs the stage scored (blocking at work).
        seconds: time spent in the stage.
        problems: what is wrong (empty: the datasets are as :mod:`dataset` promises).
    """

    records: int = 0
    keys: int = 0
    goldens: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    comparisons: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No duplicate, merge, review or rejection, and every version as expected."""
        return not self.problems


def _report(problems: list[str], what: str, items: Sequence[str], limit: int = 5) -> None:
    if items:
        shown = ", ".join(items[:limit])
        problems.append(f"{len(items):,} {what}: {shown}{', ...' if len(items) > limit else ''}")


def check_datasets(
    entity: EntityModel, catalog: SchemaCatalog, datasets: Sequence[Dataset]
) -> DatasetCheck:
    """Feed ``datasets`` (in this order) through the resolve stage and check each key's fate.

    Args:
        entity: the entity model the hub runs (its ``match:`` section decides).
        catalog: the Avro schemas.
        datasets: the datasets, in the order the hub would consume them.
    """
    pipeline = EntityPipeline(entity, catalog, "bench")
    stage = LocalResolveStage(pipeline)
    check = DatasetCheck()
    expected: dict[str, int] = {}
    started = time.perf_counter()
    for data in datasets:
        for key, value in data.messages:
            message = Message(
                pipeline.source_topic, 0, check.records, APPENDED_MS + check.records, key, value
            )
            outcome = stage.feed(message).outcome
            check.outcomes[outcome.value] = check.outcomes.get(outcome.value, 0) + 1
            check.records += 1
        expected.update(data.final_versions)
    check.seconds = time.perf_counter() - started
    check.comparisons = stage.comparisons
    check.keys = len(expected)
    problems = check.problems

    others = {o: n for o, n in check.outcomes.items() if o != Outcome.ACCEPTED.value}
    if others:
        problems.append(f"inputs not simply accepted: {others}")
    reviews = sum(1 for out in stage.outputs if out.topic == pipeline.review_topic)
    if reviews:
        problems.append(f"{reviews:,} potential match(es) put up for review")

    clusters = stage.clusters()
    _report(
        problems,
        "source records not in a golden record of their own id",
        [
            ref
            for ref, golden_id in sorted(clusters.items())
            if golden_id != golden_id_for(ENTITY, *ref.split(":", 1))
        ],
    )
    goldens = stage.goldens()
    check.goldens = len(goldens)
    _report(problems, "golden records expected but missing", sorted(set(expected) - set(goldens)))
    _report(problems, "golden records not expected", sorted(set(goldens) - set(expected)))
    _report(
        problems,
        "golden records merged or holding several sources",
        [
            gid
            for gid, golden in sorted(goldens.items())
            if golden.status is not GoldenStatus.ACTIVE or len(golden.active_sources) != 1
        ],
    )
    _report(
        problems,
        "golden records not at their final version",
        [
            f"{gid} (v{golden.version}, expected v{expected[gid]})"
            for gid, golden in sorted(goldens.items())
            if gid in expected and golden.version != expected[gid]
        ],
    )
    return check


def main(argv: Sequence[str] | None = None) -> int:
    """Generate a run's datasets, check them; exit code 1 when a check fails."""
    parser = argparse.ArgumentParser(
        prog="benchmarks/dataset_check.py", description=__doc__.split("\n\n", 1)[0]
    )
    parser.add_argument("--records", type=int, default=5000, help="main changes (default 5000)")
    parser.add_argument(
        "--latency-records", type=int, default=1000, help="latency keys (default 1000)"
    )
    parser.add_argument("--update-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    model = load_model(REPO / "config" / "model.yaml")
    catalog = SchemaCatalog.load(REPO / "schemas")
    entity = model.entity(ENTITY)
    run = generate_run(
        entity,
        catalog.codec(f"mdhub.{ENTITY}.CandidateChange"),
        catalog.codec(f"mdhub.{ENTITY}.Attributes"),
        args.records,
        args.latency_records,
        update_fraction=args.update_fraction,
        seed=args.seed,
    )
    check = check_datasets(entity, catalog, run.in_hub_order)
    print(
        f"{check.records:,} changes of {check.keys:,} keys -> {check.goldens:,} golden records; "
        f"outcomes {check.outcomes}; {check.comparisons / max(check.records, 1):.1f} candidate "
        f"pairs scored per change; {run.people.redrawn:,} people redrawn while generating; "
        f"{check.records / check.seconds:,.0f} changes/s in memory"
    )
    for problem in check.problems:
        print(f"PROBLEM: {problem}")
    print("dataset check: " + ("OK" if check.ok else "FAILED"))
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main())
