"""Matching quality and throughput of the live pipeline, measured against generated ground truth.

:func:`evaluate` generates a data set with :func:`mdhub.testdata.generate`, runs it through a real
``mdhub worker`` in a namespace of its own (``<namespace>_eval_<8 hex>``) and scores the golden
records it wrote against the truth. The same messages then run in-process through
:class:`~mdhub.stream.replay.LocalResolveStage`, in the order the router forwarded them, which
gives the pure resolve-stage throughput (no Kafka) and an oracle: its clusters must equal the
live ones.

The pure parts (building the messages, clusters from golden records, the in-process run, the
false-positive/false-negative analysis) take no Kafka client and are unit-tested; the live run
talks to Kafka through :class:`LiveRun`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mdhub.domain.matching import MatchScore, compare
from mdhub.domain.model import EntityModel, HubModel
from mdhub.domain.records import GoldenRecord, GoldenStatus
from mdhub.errors import ConfigError, KafkaUnavailableError, MdhubError
from mdhub.naming import Stage, group_name, topic_name
from mdhub.serde.catalog import SchemaCatalog
from mdhub.serde.generate import fullname
from mdhub.serde.mapping import change_to_avro, golden_from_avro
from mdhub.settings import Settings
from mdhub.stream.pipeline import EntityPipeline, Message, Outcome
from mdhub.stream.replay import LocalResolveStage, router_order
from mdhub.testdata import Difficulty, Generated, GeneratedRecord, Quality, pairwise_quality

if TYPE_CHECKING:
    from mdhub.stream.bundle import InputCounter

__all__ = [
    "TARGET_F1",
    "TARGET_PRECISION",
    "TARGET_RESOLVE_RATE",
    "ClusterComparison",
    "ErrorAnalysis",
    "ErrorPair",
    "Evaluation",
    "EvaluationOptions",
    "EvaluationReport",
    "LiveFigures",
    "LocalRun",
    "NullObserver",
    "Observer",
    "Target",
    "analyse_errors",
    "clusters_from_goldens",
    "compare_clusters",
    "encode_records",
    "eval_namespace",
    "evaluate",
    "run_in_process",
    "synthetic_messages",
]

TARGET_F1 = 0.97
TARGET_PRECISION = 0.99
TARGET_RESOLVE_RATE = 2000.0
"""New source records per second through the in-process resolve stage (one core, no Kafka)."""

_NAMESPACE = re.compile(r"^[a-z][a-z0-9_]*$")
_METRICS_LINE = re.compile(r"worker metrics on http://[^:/]+:(\d+)/metrics")
COMPARISONS_METRIC = "mdhub_resolve_comparisons_pairs_total"
ASSIGNED_METRIC = "mdhub_worker_assigned_partitions"
STOP_GRACE_S = 30.0
DELIVERY_TIMEOUT_S = 120.0
MAX_PAIRS = 100_000
"""Error pairs enumerated per kind at most (a wrongly merged giant cluster has millions)."""


# -- progress ------------------------------------------------------------------------------------


class Observer(Protocol):
    """Where :func:`evaluate` reports what it is doing (the CLI draws progress bars)."""

    def step(self, text: str, total: int | None = None) -> None:
        """A step begins (with the number of units it counts, if known)."""

    def advance(self, done: int, total: int | None = None) -> None:
        """Progress of the current step."""

    def note(self, text: str) -> None:
        """A fact worth a line of its own (a finished step, a warning)."""


class NullObserver:
    """Reports nothing."""

    def step(self, text: str, total: int | None = None) -> None:
        pass

    def advance(self, done: int, total: int | None = None) -> None:
        pass

    def note(self, text: str) -> None:
        pass


# -- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """A figure with the threshold it should reach."""

    name: str
    value: float | None
    threshold: float
    unit: str = ""

    @property
    def met(self) -> bool:
        return self.value is not None and self.value >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "threshold": self.threshold,
            "unit": self.unit,
            "met": self.met,
        }


@dataclass(frozen=True, slots=True)
class LiveFigures:
    """What the live pipeline did with the published messages.

    Attributes:
        quality: the golden topic's clusters scored against the truth.
        publish_seconds: from the first produce to the last delivery report.
        seconds: from the first produce to the worker's last state write for them.
        comparisons: candidate pairs the worker scored (its Prometheus counter).
        goldens: active golden records on the golden topic.
    """

    quality: Quality
    publish_seconds: float
    seconds: float
    messages: int
    comparisons: float | None
    goldens: int

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def comparisons_per_message(self) -> float | None:
        if self.comparisons is None or not self.messages:
            return None
        return self.comparisons / self.messages

    def to_dict(self) -> dict[str, Any]:
        return {
            "quality": self.quality.to_dict(),
            "publish_seconds": self.publish_seconds,
            "seconds": self.seconds,
            "messages": self.messages,
            "messages_per_second": self.messages_per_second,
            "comparisons": self.comparisons,
            "comparisons_per_message": self.comparisons_per_message,
            "active_goldens": self.goldens,
        }


@dataclass(slots=True)
class LocalRun:
    """The in-process run of the resolve stage.

    Attributes:
        seconds: wall time of the feed loop (every message).
        new_seconds: wall time spent in messages that brought a source record the stage had not
            seen (the first version of a record: blocking, scoring, linking).
        cpu_seconds: CPU time of the feeding thread over the loop.
    """

    stage: LocalResolveStage
    clusters: dict[str, str]
    quality: Quality
    messages: int
    new_records: int
    seconds: float
    new_seconds: float
    cpu_seconds: float
    outcomes: dict[str, int]

    @property
    def comparisons(self) -> int:
        return self.stage.comparisons

    @property
    def new_per_second(self) -> float:
        return self.new_records / self.new_seconds if self.new_seconds > 0 else 0.0

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def messages_per_cpu_second(self) -> float:
        return self.messages / self.cpu_seconds if self.cpu_seconds > 0 else 0.0

    @property
    def comparisons_per_message(self) -> float:
        return self.comparisons / self.messages if self.messages else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "quality": self.quality.to_dict(),
            "messages": self.messages,
            "new_records": self.new_records,
            "seconds": self.seconds,
            "new_seconds": self.new_seconds,
            "cpu_seconds": self.cpu_seconds,
            "messages_per_second": self.messages_per_second,
            "messages_per_cpu_second": self.messages_per_cpu_second,
            "new_records_per_second": self.new_per_second,
            "comparisons": self.comparisons,
            "comparisons_per_message": self.comparisons_per_message,
            "outcomes": dict(self.outcomes),
        }


@dataclass(frozen=True, slots=True)
class ClusterComparison:
    """How the in-process clusters compare with the live ones.

    Attributes:
        identical: same source records with the same golden ids.
        same_grouping: the same partition of source records (golden ids aside).
        differing: source records whose cluster differs (missing on one side included).
    """

    identical: bool
    same_grouping: bool
    differing: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "same_grouping": self.same_grouping,
            "differing_records": self.differing,
        }


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """Everything ``mdhub evaluate`` measured."""

    entity: str
    difficulty: str
    seed: int
    people: int
    source_records: int
    messages: int
    true_pairs: int
    local: LocalRun
    live: LiveFigures | None = None
    clusters: ClusterComparison | None = None
    namespace: str | None = None

    @property
    def quality(self) -> Quality:
        """The quality that counts: the live one, the in-process one without a live run."""
        return self.live.quality if self.live is not None else self.local.quality

    def targets(self) -> list[Target]:
        """The targets and whether they are met."""
        quality = self.quality
        return [
            Target("F1", quality.f1, TARGET_F1),
            Target("precision", quality.precision, TARGET_PRECISION),
            Target("resolve", self.local.new_per_second, TARGET_RESOLVE_RATE, "new records/s"),
        ]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-able data."""
        return {
            "entity": self.entity,
            "difficulty": self.difficulty,
            "seed": self.seed,
            "namespace": self.namespace,
            "people": self.people,
            "source_records": self.source_records,
            "messages": self.messages,
            "true_pairs": self.true_pairs,
            "quality": self.quality.to_dict(),
            "live": self.live.to_dict() if self.live is not None else None,
            "in_process": self.local.to_dict(),
            "clusters": self.clusters.to_dict() if self.clusters is not None else None,
            "targets": [t.to_dict() for t in self.targets()],
        }


# -- messages ------------------------------------------------------------------------------------


def eval_namespace(base: str, token: str | None = None) -> str:
    """``<base>_eval_<8 hex>``: a namespace of its own for one evaluation.

    Raises:
        MdhubError: the result is not a valid namespace segment.
    """
    name = f"{base}_eval_{token if token is not None else uuid.uuid4().hex[:8]}"
    if not _NAMESPACE.match(name):
        raise MdhubError(f"evaluation namespace {name!r} must match {_NAMESPACE.pattern}")
    return name


def encode_records(
    entity: EntityModel, catalog: SchemaCatalog, records: Iterable[GeneratedRecord]
) -> list[tuple[bytes, bytes]]:
    """``(Kafka key, Avro value)`` of every record version, in the given order."""
    codec = catalog.codec(fullname(entity.name, "CandidateChange"))
    return [
        (r.source_ref.encode(), codec.encode(change_to_avro(entity, r.change(entity.name))))
        for r in records
    ]


def synthetic_messages(
    topic: str, encoded: Sequence[tuple[bytes, bytes]], start_ms: int | None = None
) -> list[Message]:
    """Messages in publication order on one partition, one millisecond apart (no Kafka)."""
    start = int(time.time() * 1000) if start_ms is None else start_ms
    return [
        Message(topic, 0, offset, start + offset, key, value)
        for offset, (key, value) in enumerate(encoded)
    ]


# -- the in-process run --------------------------------------------------------------------------


def run_in_process(
    entity: EntityModel,
    catalog: SchemaCatalog,
    namespace: str,
    messages: Sequence[Message],
    truth: Mapping[str, str],
    progress: Callable[[int, int], None] | None = None,
) -> LocalRun:
    """Feed ``messages`` (in this order) through a fresh in-memory resolve stage and score it.

    Only the feed loop is timed; each message's time counts as "new" when its Kafka key is a
    source record the stage had not seen before.
    """
    stage = LocalResolveStage(EntityPipeline(entity, catalog, namespace))
    seen: set[bytes | None] = set()
    outcomes: Counter[str] = Counter()
    clock = time.perf_counter
    total = len(messages)
    new_records = 0
    new_seconds = 0.0
    step = max(1, total // 100)
    cpu_started = time.thread_time()
    started = clock()
    for i, message in enumerate(messages):
        before = clock()
        result = stage.feed(message)
        spent = clock() - before
        if message.key not in seen:
            seen.add(message.key)
            new_records += 1
            new_seconds += spent
        outcomes[result.outcome.value] += 1
        if progress is not None and i % step == 0:
            progress(i, total)
    seconds = clock() - started
    cpu_seconds = time.thread_time() - cpu_started
    if progress is not None:
        progress(total, total)
    clusters = stage.clusters()
    return LocalRun(
        stage=stage,
        clusters=clusters,
        quality=pairwise_quality(truth, clusters),
        messages=total,
        new_records=new_records,
        seconds=seconds,
        new_seconds=new_seconds,
        cpu_seconds=cpu_seconds,
        outcomes={o.value: outcomes.get(o.value, 0) for o in Outcome},
    )


# -- clusters ------------------------------------------------------------------------------------


def clusters_from_goldens(goldens: Iterable[GoldenRecord | None]) -> dict[str, str]:
    """Source ref -> golden id, from the latest golden record of every key.

    Only active golden records count (a merged one's sources moved to its survivor; a retired
    or erased one has none), and of those only their sources that are not deleted.
    """
    clusters: dict[str, str] = {}
    for golden in goldens:
        if golden is None or golden.status is not GoldenStatus.ACTIVE:
            continue
        for record in golden.active_sources:
            clusters[record.source_ref] = golden.golden_id
    return clusters


def latest_by_key(
    items: Iterable[tuple[bytes | None, bytes | None]],
) -> dict[bytes, bytes]:
    """The latest value per key of a compacted topic read in offset order (tombstones delete)."""
    latest: dict[bytes, bytes] = {}
    for key, value in items:
        if key is None:
            continue
        if value is None:
            latest.pop(key, None)
        else:
            latest[key] = value
    return latest


def _grouping(clusters: Mapping[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = defaultdict(set)
    for ref, golden_id in clusters.items():
        groups[golden_id].add(ref)
    return {frozenset(refs) for refs in groups.values()}


def compare_clusters(a: Mapping[str, str], b: Mapping[str, str]) -> ClusterComparison:
    """Whether two clusterings are identical (ids too) or group the records the same way."""
    refs = set(a) | set(b)
    differing = sum(1 for ref in refs if a.get(ref) != b.get(ref))
    same_grouping = set(a) == set(b) and _grouping(a) == _grouping(b)
    return ClusterComparison(differing == 0, same_grouping, differing)


# -- false positives and negatives ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorPair:
    """A pair of source records the hub got wrong.

    Attributes:
        kind: ``FP`` (put together, different entities) or ``FN`` (one entity, kept apart).
        reason: why, in a few words (see :func:`analyse_errors`).
        score: the two records' direct comparison (their latest versions), if both are known.
        shared_keys: the blocking keys they share (none: they were never compared).
    """

    kind: str
    a: str
    b: str
    entity_a: str
    entity_b: str
    golden_a: str | None
    golden_b: str | None
    reason: str
    score: MatchScore | None
    shared_keys: tuple[str, ...]
    attributes_a: Mapping[str, Any]
    attributes_b: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "a": self.a,
            "b": self.b,
            "entity_a": self.entity_a,
            "entity_b": self.entity_b,
            "golden_a": self.golden_a,
            "golden_b": self.golden_b,
            "reason": self.reason,
            "score": self.score.to_dict() if self.score is not None else None,
            "shared_blocking_keys": list(self.shared_keys),
            "attributes_a": {k: _plain(v) for k, v in self.attributes_a.items()},
            "attributes_b": {k: _plain(v) for k, v in self.attributes_b.items()},
        }


@dataclass(frozen=True, slots=True)
class ErrorAnalysis:
    """The false positives and negatives, counted by reason, with examples.

    Attributes:
        fp_reasons, fn_reasons: pairs per reason (over at most :data:`MAX_PAIRS` pairs per kind).
        fn_disagreeing: per attribute, in how many false-negative pairs it counted against.
        fn_missing: per attribute, in how many false-negative pairs one side lacked it.
        fn_sources: false-negative pairs by the two records' sources.
        examples: up to ``limit`` pairs of each kind.
    """

    false_positives: int
    false_negatives: int
    fp_reasons: dict[str, int]
    fn_reasons: dict[str, int]
    fn_disagreeing: dict[str, int]
    fn_missing: dict[str, int]
    fn_sources: dict[str, int]
    fp_examples: tuple[ErrorPair, ...]
    fn_examples: tuple[ErrorPair, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "false_positive_pairs": self.false_positives,
            "false_negative_pairs": self.false_negatives,
            "false_positive_reasons": self.fp_reasons,
            "false_negative_reasons": self.fn_reasons,
            "false_negative_disagreeing_attributes": self.fn_disagreeing,
            "false_negative_missing_attributes": self.fn_missing,
            "false_negative_sources": self.fn_sources,
            "false_positive_examples": [p.to_dict() for p in self.fp_examples],
            "false_negative_examples": [p.to_dict() for p in self.fn_examples],
        }


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _pairs_within(
    groups: Mapping[str, Sequence[str]], label: Callable[[str], str], limit: int
) -> Iterator[tuple[str, str]]:
    """Pairs of one group whose labels differ, groups in sorted order, at most ``limit``."""
    count = 0
    for key in sorted(groups):
        refs = sorted(groups[key])
        for a, b in combinations(refs, 2):
            if label(a) != label(b):
                yield a, b
                count += 1
                if count >= limit:
                    return


def _relation(lookalikes: Mapping[str, tuple[str, str]], ea: str, eb: str) -> str:
    first, second = lookalikes.get(ea), lookalikes.get(eb)
    if first is not None and first[0] == eb:
        return f"{first[1]} look-alike"
    if second is not None and second[0] == ea:
        return f"{second[1]} look-alike"
    if first is not None and second is not None and first[0] == second[0]:
        return "look-alikes of one person"
    return "unrelated"


def analyse_errors(
    generated: Generated,
    clusters: Mapping[str, str],
    stage: LocalResolveStage,
    entity: EntityModel,
    limit: int = 5,
) -> ErrorAnalysis:
    """Find the false-positive and false-negative pairs of ``clusters`` and say why they happened.

    The direct score of a pair comes from the in-process stage's identity index (the features of
    each record's latest version). Reasons: for a false positive, how the two entities relate
    (a generated look-alike, or unrelated) and whether the pair scores a match on its own or was
    joined through other records; for a false negative, no shared blocking key (never compared;
    with the verdict a comparison would have given), a deterministic rule, a score in the review band (left to a steward), below the review
    threshold, or a match score that did not link.
    """
    truth = generated.truth()
    spec = entity.matching
    latest: dict[str, Mapping[str, Any]] = {}
    for record in generated.records:
        latest[record.source_ref] = record.attributes
    lookalikes = {item.entity_id: (item.of, item.kind) for item in generated.lookalikes}

    def explain(a: str, b: str) -> tuple[MatchScore | None, tuple[str, ...]]:
        sa, sb = stage.index.summary(a), stage.index.summary(b)
        if sa is None or sb is None or spec is None:
            return None, ()
        shared = tuple(sorted(set(sa.keys) & set(sb.keys)))
        return compare(spec, sa.features, sb.features), shared

    def pair(kind: str, a: str, b: str, reason: str, score: Any, shared: Any) -> ErrorPair:
        return ErrorPair(
            kind,
            a,
            b,
            truth[a],
            truth[b],
            clusters.get(a),
            clusters.get(b),
            reason,
            score,
            shared,
            latest.get(a, {}),
            latest.get(b, {}),
        )

    by_cluster: dict[str, list[str]] = defaultdict(list)
    by_entity: dict[str, list[str]] = defaultdict(list)
    for ref, entity_id in truth.items():
        by_entity[entity_id].append(ref)
        by_cluster[clusters.get(ref, "\0" + ref)].append(ref)

    quality = pairwise_quality(truth, clusters)
    fp_reasons: Counter[str] = Counter()
    fp_examples: list[ErrorPair] = []
    for a, b in _pairs_within(by_cluster, truth.__getitem__, MAX_PAIRS):
        score, shared = explain(a, b)
        relation = _relation(lookalikes, truth[a], truth[b])
        how = "direct match" if score is not None and score.verdict == "match" else "transitive"
        reason = f"{relation}, {how}"
        fp_reasons[reason] += 1
        if len(fp_examples) < limit:
            fp_examples.append(pair("FP", a, b, reason, score, shared))

    fn_reasons: Counter[str] = Counter()
    disagreeing: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    fn_examples: list[ErrorPair] = []
    for a, b in _pairs_within(by_entity, lambda r: clusters.get(r, "\0" + r), MAX_PAIRS):
        score, shared = explain(a, b)
        if score is None:
            reason = "not resolved"
        elif score.rule is not None:
            reason = f"rule {score.rule}"
        elif not shared:
            # never compared: the verdict says whether blocking alone lost the pair
            reason = f"no shared blocking key (would score {score.verdict})"
        elif score.verdict == "review":
            reason = "review band (awaits a steward)"
        elif score.verdict == "no_match":
            reason = "score below review threshold"
        else:
            reason = "scores a match but not linked"
        fn_reasons[reason] += 1
        sources["-".join(sorted((a.split(":", 1)[0], b.split(":", 1)[0])))] += 1
        if score is not None:
            for c in score.contributions:
                if c.similarity is None:
                    missing[c.attribute] += 1
                elif c.weight < 0:
                    disagreeing[c.attribute] += 1
        if len(fn_examples) < limit:
            fn_examples.append(pair("FN", a, b, reason, score, shared))

    def ranked(counter: Counter[str]) -> dict[str, int]:
        return dict(counter.most_common())

    return ErrorAnalysis(
        false_positives=quality.false_positives,
        false_negatives=quality.false_negatives,
        fp_reasons=ranked(fp_reasons),
        fn_reasons=ranked(fn_reasons),
        fn_disagreeing=ranked(disagreeing),
        fn_missing=ranked(missing),
        fn_sources=ranked(sources),
        fp_examples=tuple(fp_examples),
        fn_examples=tuple(fn_examples),
    )


# -- the live run (Kafka, a worker process) ------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def parse_metric(text: str, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """The value of sample ``name`` (with these labels) in a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = dict(labels or {})
    found: float | None = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in wanted.items()):
                found = (found or 0.0) + float(sample.value)
    return found


class WorkerProcess:
    """An ``mdhub worker`` subprocess of the evaluation namespace, logging to a file."""

    def __init__(self, settings: Settings, namespace: str, workdir: Path) -> None:
        self.log_path = workdir / "worker.log"
        self.port: int | None = None
        env = dict(os.environ)
        env.pop("MDHUB_MODEL_FILE", None)
        env.update(
            {
                "MDHUB_NAMESPACE": namespace,
                "MDHUB_MODEL": str(settings.model_file.resolve()),
                "MDHUB_SCHEMAS_DIR": str(settings.schemas_dir.resolve()),
                "MDHUB_WORKER__DATA_DIR": str(workdir / "worker"),
                "MDHUB_WORKER__METRICS_PORT": str(free_port()),
            }
        )
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            # a session of its own: Ctrl-C reaches only us, and we stop the worker in order
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "mdhub", "worker"],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise if the worker has exited."""
        if not self.alive():
            code = self._proc.returncode if self._proc is not None else None
            raise MdhubError(
                f"the evaluation worker exited (code {code}); its log ({self.log_path}) ends:\n"
                + self.log_tail()
            )

    def metrics_port(self) -> int | None:
        """The port the worker serves metrics on (from its log), once it says so."""
        if self.port is None:
            try:
                match = _METRICS_LINE.search(self.log_path.read_text(errors="replace"))
            except OSError:
                match = None
            if match:
                self.port = int(match.group(1))
        return self.port

    def scrape(self, timeout: float = 5.0) -> str | None:
        """The worker's ``/metrics`` text, or None while it does not answer."""
        port = self.metrics_port()
        if port is None:
            return None
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/metrics", timeout=timeout
            ) as response:
                return str(response.read().decode("utf-8", "replace"))
        except (urllib.error.URLError, OSError):
            return None

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class LiveRun:
    """Kafka access of one evaluation namespace: topics, publishing, offsets, reading, cleanup."""

    def __init__(self, settings: Settings, model: HubModel, namespace: str, entity: str) -> None:
        from confluent_kafka import Consumer
        from confluent_kafka.admin import AdminClient

        from mdhub.kafka.config import admin_config, consumer_config

        self.settings = settings
        self.model = model
        self.namespace = namespace
        self.entity = entity
        kafka = settings.kafka
        self.source_topic = topic_name(namespace, entity, Stage.SOURCE)
        self.commands_topic = topic_name(namespace, entity, Stage.COMMANDS)
        self.resolve_topic = topic_name(namespace, entity, Stage.RESOLVE)
        self.golden_topic = topic_name(namespace, entity, Stage.GOLDEN)
        self.state_topic = topic_name(namespace, entity, Stage.STATE)
        self.router_group = group_name(namespace, f"router-{entity}")
        self.worker_group = group_name(namespace, "worker")
        self.admin = AdminClient(admin_config(kafka))
        self.consumer = Consumer(
            consumer_config(
                kafka, group_name(namespace, "evaluate"), **{"enable.auto.commit": False}
            )
        )
        self._inputs: InputCounter | None = None

    def close(self) -> None:
        self.consumer.close()

    def _unavailable(self, what: str, exc: BaseException) -> KafkaUnavailableError:
        return KafkaUnavailableError(
            f"Kafka at {self.settings.kafka.bootstrap_servers}: cannot {what}: {exc}"
        )

    def ensure_topics(self) -> int:
        """Create the namespace's topics; returns how many there are."""
        from mdhub.kafka.admin import ensure_topics
        from mdhub.topology import topic_specs

        kafka = self.settings.kafka
        specs = topic_specs(self.model, self.namespace, kafka.partitions, kafka.replication_factor)
        return len(ensure_topics(kafka, specs))

    def publish(
        self, encoded: Sequence[tuple[bytes, bytes]], progress: Callable[[int, int], None]
    ) -> tuple[float, float]:
        """Publish in order with an idempotent producer; returns (start wall time, seconds)."""
        from mdhub.kafka.producer import HubProducer

        producer = HubProducer(self.settings.kafka)
        total = len(encoded)
        started = time.time()
        clock = time.monotonic()
        for i, (key, value) in enumerate(encoded):
            producer.produce(self.source_topic, key, value)
            if i % 500 == 0:
                producer.poll(0)
                progress(producer.report.delivered, total)
        # short non-blocking polls: Ctrl-C inside a long librdkafka flush surfaces as SystemError
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        report = producer.report
        while report.delivered + report.failed < total and time.monotonic() < deadline:
            producer.poll(0)
            progress(report.delivered, total)
            time.sleep(0.05)
        producer.deliver_all(DELIVERY_TIMEOUT_S)
        progress(total, total)
        return started, time.monotonic() - clock

    def _committed(self, group: str, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        from confluent_kafka import KafkaException

        from mdhub.kafka.offsets import committed_offsets

        timeout = self.settings.kafka.request_timeout_s
        try:
            meta = self.consumer.list_topics(timeout=timeout)
            partitions = [
                (t, p) for t in topics if t in meta.topics for p in meta.topics[t].partitions
            ]
            committed = committed_offsets(self.settings.kafka, group, partitions, timeout)
        except KafkaException as exc:
            raise self._unavailable(f"read the offsets of group {group}", exc) from exc
        return {key: max(offset, 0) for key, offset in committed.items()}

    def resolved(self) -> int:
        """Inputs the worker has committed past on the resolve topic (bundles count theirs)."""
        from confluent_kafka import KafkaException

        from mdhub.stream.bundle import InputCounter

        committed = self._committed(self.worker_group, [self.resolve_topic])
        if self._inputs is None:
            self._inputs = InputCounter(self.consumer, self.resolve_topic)
        try:
            return self._inputs.inputs(
                {p: o for (_, p), o in committed.items()}, self.settings.kafka.request_timeout_s
            )
        except KafkaException as exc:
            raise self._unavailable(f"read {self.resolve_topic}", exc) from exc

    def caught_up(self) -> bool:
        """Router lag on source+commands and worker lag on the resolve topic are all 0."""
        from mdhub.kafka.lag import group_lag

        kafka = self.settings.kafka
        routed = group_lag(kafka, self.router_group, [self.source_topic, self.commands_topic])
        if not routed or any(lag != 0 for lag in routed.values()):
            return False
        resolved = group_lag(kafka, self.worker_group, [self.resolve_topic])
        return bool(resolved) and all(lag == 0 for lag in resolved.values())

    def last_timestamp_ms(self, topic: str) -> int | None:
        """The newest message timestamp of ``topic`` (its partitions' last messages)."""
        from confluent_kafka import KafkaException, TopicPartition

        timeout = self.settings.kafka.request_timeout_s
        latest: int | None = None
        try:
            meta = self.consumer.list_topics(topic, timeout=timeout)
            for p in meta.topics[topic].partitions:
                tp = TopicPartition(topic, p)
                low, high = self.consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
                if high <= low:
                    continue
                self.consumer.assign([TopicPartition(topic, p, high - 1)])
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    msg = self.consumer.poll(0.5)
                    if msg is None or msg.error() is not None:
                        continue
                    _, ts = msg.timestamp()
                    if ts > 0:
                        latest = max(latest or 0, int(ts))
                    break
            self.consumer.unassign()
        except KafkaException as exc:
            raise self._unavailable(f"read the end of {topic}", exc) from exc
        return latest

    def read_topic(self, topic: str) -> list[Message]:
        """Every message of ``topic`` up to its current end, partition by partition."""
        from mdhub.kafka.reading import read_to_end, snapshot_ends

        out: list[Message] = []

        def keep(batch: Sequence[Any]) -> None:
            for m in batch:
                _, ts = m.timestamp()
                out.append(Message(topic, m.partition(), m.offset(), ts, m.key(), m.value()))

        snapshot = snapshot_ends(self.consumer, [topic], self.settings.kafka.request_timeout_s)
        read_to_end(self.consumer, snapshot, keep)
        return [m for m in out if m.offset < snapshot.ends.get((topic, m.partition), 0)]

    def delete_namespace(self) -> list[str]:
        """Delete every topic and consumer group of the namespace; returns the topics deleted."""
        from confluent_kafka import KafkaException

        prefixes = (self.namespace + ".", self.namespace + "-")
        timeout = self.settings.kafka.request_timeout_s
        try:
            meta = self.admin.list_topics(timeout=timeout)
            topics = sorted(t for t in meta.topics if t.startswith(prefixes))
            if topics:
                futures = self.admin.delete_topics(topics, operation_timeout=30)
                for future in futures.values():
                    future.result()
        except KafkaException as exc:
            raise self._unavailable(
                f"delete the topics of namespace {self.namespace}", exc
            ) from exc
        # groups hold no data once their topics are gone; removing them is tidiness, not a must
        with contextlib.suppress(KafkaException, ValueError):
            listed = self.admin.list_consumer_groups(request_timeout=timeout).result()
            groups = [g.group_id for g in listed.valid if g.group_id.startswith(prefixes)]
            if groups:
                for future in self.admin.delete_consumer_groups(
                    groups, request_timeout=timeout
                ).values():
                    with contextlib.suppress(KafkaException):
                        future.result()
        return topics


# -- the whole evaluation ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvaluationOptions:
    """What ``mdhub evaluate`` was asked for."""

    entity: str
    people: int = 2000
    difficulty: str = "default"
    seed: int = 0
    keep: bool = False
    show_errors: int = 0
    ready_timeout_s: float = 180.0
    stall_timeout_s: float = 180.0


@dataclass(slots=True)
class Evaluation:
    """A finished evaluation: the report, and the error analysis when asked for."""

    report: EvaluationReport
    errors: ErrorAnalysis | None = None
    workdir: Path | None = None
    """The worker's log and state, when kept (``keep``)."""


def _wait_ready(worker: WorkerProcess, timeout: float) -> None:
    """Wait until the worker serves metrics and owns its partitions (its routers run)."""
    deadline = time.monotonic() + timeout
    while True:
        worker.check_alive()
        text = worker.scrape()
        if text is not None:
            assigned = parse_metric(text, ASSIGNED_METRIC)
            if assigned:
                return
        if time.monotonic() > deadline:
            raise MdhubError(
                f"the evaluation worker did not get its partitions within {timeout:.0f}s; its "
                f"log ({worker.log_path}) ends:\n" + worker.log_tail()
            )
        time.sleep(0.25)


def _wait_processed(
    live: LiveRun, worker: WorkerProcess, total: int, stall_timeout: float, observer: Observer
) -> float:
    """Wait until every input is routed and resolved; returns the wall time it was seen so."""
    last = -1
    last_change = time.monotonic()
    while True:
        worker.check_alive()
        done = live.resolved()
        observer.advance(min(done, total), total)
        if done >= total and live.caught_up():
            return time.time()
        now = time.monotonic()
        if done != last:
            last, last_change = done, now
        elif now - last_change > stall_timeout:
            raise MdhubError(
                f"the evaluation worker made no progress for {stall_timeout:.0f}s "
                f"({done} of {total} resolved); its log ({worker.log_path}) ends:\n"
                + worker.log_tail()
            )
        time.sleep(0.25)


def evaluate(
    settings: Settings,
    model: HubModel,
    catalog: SchemaCatalog,
    options: EvaluationOptions,
    observer: Observer | None = None,
) -> Evaluation:
    """Measure matching quality and throughput through the live pipeline (see the module doc).

    The worker is stopped and the namespace's topics are deleted (unless ``options.keep``) on the
    way out, also after an error or Ctrl-C.

    Raises:
        KafkaUnavailableError: Kafka cannot be reached.
        ConfigError: an unknown entity type or difficulty, or fewer than one person.
        MdhubError: the worker failed or stalled (its log's end is in the message).
    """
    from mdhub.kafka.admin import existing_topics
    from mdhub.testdata import generate

    obs = observer or NullObserver()
    try:
        entity = model.entity(options.entity)
        difficulty = Difficulty.preset(options.difficulty)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if options.people < 1:
        raise ConfigError(f"--people must be at least 1, got {options.people}")
    obs.step(f"checking Kafka at {settings.kafka.bootstrap_servers}")
    existing_topics(settings.kafka)  # Kafka must answer before anything is made

    obs.step(f"generating {options.people} {entity.name} entities", options.people)
    try:
        generated = generate(entity, options.people, difficulty, options.seed, progress=obs.advance)
    except ValueError as exc:
        raise ConfigError(f"cannot generate {entity.name}: {exc}") from None
    truth = generated.truth()
    encoded = encode_records(entity, catalog, generated.records)

    namespace = eval_namespace(settings.namespace)
    workdir = Path(tempfile.mkdtemp(prefix=f"mdhub-{namespace}-"))
    live = LiveRun(settings, model, namespace, entity.name)
    worker = WorkerProcess(settings, namespace, workdir)
    error: BaseException | None = None
    try:
        obs.step(f"creating the topics of namespace {namespace}")
        topics = live.ensure_topics()
        obs.note(f"namespace {namespace}: {topics} topics created")

        obs.step(f"starting a worker (log: {worker.log_path})")
        worker.start()
        _wait_ready(worker, options.ready_timeout_s)
        obs.note(f"worker running (pid {worker.pid}, metrics on port {worker.metrics_port()})")

        obs.step(f"publishing {len(encoded)} messages to {live.source_topic}", len(encoded))
        started, publish_seconds = live.publish(encoded, obs.advance)
        obs.note(f"published {len(encoded)} messages in {publish_seconds:.1f}s")

        obs.step("resolving in the live pipeline (worker's committed offsets)", len(encoded))
        seen_done = _wait_processed(live, worker, len(encoded), options.stall_timeout_s, obs)
        # the worker writes its state after each batch's outputs: its last write ends the run
        finished_ms = live.last_timestamp_ms(live.state_topic)
        finished = finished_ms / 1000 if finished_ms is not None else seen_done
        live_seconds = max(finished - started, 1e-9)
        obs.note(f"live pipeline done {live_seconds:.1f}s after the first publish")

        obs.step(f"reading {live.golden_topic}")
        golden_codec = catalog.codec(fullname(entity.name, "GoldenRecord"))
        latest = latest_by_key((m.key, m.value) for m in live.read_topic(live.golden_topic))
        goldens = [golden_from_avro(golden_codec.decode(v), entity) for v in latest.values()]
        live_clusters = clusters_from_goldens(goldens)
        metrics = worker.scrape()
        comparisons = (
            parse_metric(metrics, COMPARISONS_METRIC, {"entity": entity.name})
            if metrics is not None
            else None
        )
        figures = LiveFigures(
            quality=pairwise_quality(truth, live_clusters),
            publish_seconds=publish_seconds,
            seconds=live_seconds,
            messages=len(encoded),
            comparisons=comparisons,
            goldens=sum(1 for g in goldens if g.status is GoldenStatus.ACTIVE),
        )

        # what Kafka holds, in the router's order: exactly the worker's input order
        obs.step(f"reading {live.source_topic}")
        inputs = live.read_topic(live.source_topic)
        ordered = router_order(inputs, {live.source_topic: 0, live.commands_topic: 1})
        obs.step("stopping the worker")
        worker.stop()  # the in-process run gets the CPU to itself
        obs.step("resolving in-process (same messages, same order)", len(ordered))
        local = run_in_process(entity, catalog, namespace, ordered, truth, obs.advance)
        report = EvaluationReport(
            entity=entity.name,
            difficulty=options.difficulty,
            seed=options.seed,
            people=options.people,
            source_records=len(truth),
            messages=len(encoded),
            true_pairs=generated.true_pairs(),
            local=local,
            live=figures,
            clusters=compare_clusters(local.clusters, live_clusters),
            namespace=namespace,
        )
        errors = None
        if options.show_errors:
            obs.step("analysing false positives and negatives")
            errors = analyse_errors(
                generated, live_clusters, local.stage, entity, options.show_errors
            )
        return Evaluation(report, errors, workdir if options.keep else None)
    except BaseException as exc:
        error = exc
        raise
    finally:
        _clean_up(live, worker, workdir, options.keep, error, obs)


def _clean_up(
    live: LiveRun,
    worker: WorkerProcess,
    workdir: Path,
    keep: bool,
    error: BaseException | None,
    obs: Observer,
) -> None:
    """Stop the worker and delete the namespace; a cleanup error never hides the first one.

    The worker's files are kept with ``keep``, and after an error other than Ctrl-C (its log).
    """
    try:
        if worker.alive():
            obs.step("stopping the worker")
            worker.stop()
        if keep:
            obs.note(f"kept namespace {live.namespace}; the worker's log and state: {workdir}")
            return
        obs.step(f"deleting the topics of namespace {live.namespace}")
        try:
            deleted = live.delete_namespace()
        except MdhubError as exc:
            if error is None:
                raise
            obs.note(f"could not delete the topics of namespace {live.namespace}: {exc}")
        else:
            obs.note(f"deleted {len(deleted)} topics of namespace {live.namespace}")
        if error is not None and not isinstance(error, KeyboardInterrupt):
            obs.note(f"the worker's log is kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        live.close()
