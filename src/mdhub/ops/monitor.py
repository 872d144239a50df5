"""A background sampler of consumer lag: polls offsets every interval and keeps the window.

The API's ``/metrics`` and ``/readyz`` use one :class:`LagMonitor`: a daemon thread polls the
offset source every ``interval_s`` seconds into a :class:`~mdhub.ops.lag.LagTracker`, so a scrape
only reads the latest immutable :class:`~mdhub.ops.lag.LagReport` and never blocks on Kafka.

Example::

    monitor = LagMonitor.for_kafka(settings.kafka, settings.namespace)
    monitor.start()
    ...
    monitor.report()  # the latest evaluation, or None before the first poll
    monitor.stop()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import CollectorRegistry

from mdhub.errors import KafkaUnavailableError
from mdhub.naming import group_name
from mdhub.ops.lag import LagReport, LagSnapshot, LagTracker
from mdhub.ops.metrics import LagCollector, SamplerHealth
from mdhub.settings import KafkaSettings

__all__ = ["DEFAULT_INTERVAL_S", "DEFAULT_WINDOW_S", "LagMonitor", "OffsetSource"]

_log = logging.getLogger(__name__)

#: Seconds between two polls of the offsets.
DEFAULT_INTERVAL_S = 5.0
#: The evaluation window: several commit intervals of a typical consumer (5 s in librdkafka and
#: the Java client), so that a consumer between two commits is not taken for a stopped one.
DEFAULT_WINDOW_S = 60.0


class OffsetSource(Protocol):
    """Where samples come from (:class:`mdhub.ops.lagsource.KafkaLagSource`, or a fake)."""

    def sample(self) -> LagSnapshot:
        """Read one snapshot; raise :class:`~mdhub.errors.KafkaUnavailableError` when it cannot."""
        ...

    def ping(self, timeout_s: float | None = None) -> None:
        """Return when the cluster answers; raise ``KafkaUnavailableError`` otherwise."""
        ...

    def close(self) -> None:
        """Release the clients."""
        ...


class LagMonitor:
    """Samples lag in the background and serves the latest report and its Prometheus metrics.

    Args:
        source: reads the offsets.
        window_s: the evaluation window (seconds).
        interval_s: the time between polls (seconds).
        projector_group: the group whose lag is also exported as projection lag to Redis.
        clock: the wall clock (Unix seconds), for failed polls.
    """

    def __init__(
        self,
        source: OffsetSource,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        interval_s: float = DEFAULT_INTERVAL_S,
        projector_group: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.source = source
        self.interval_s = interval_s
        self._tracker = LagTracker(window_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._report: LagReport | None = None
        self._health = SamplerHealth()
        self._sampled = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(LagCollector(self.snapshot, projector_group))

    @classmethod
    def for_kafka(
        cls,
        kafka: KafkaSettings,
        namespace: str,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> LagMonitor:
        """A monitor of every group reading ``<namespace>.*`` topics on the cluster."""
        from mdhub.ops.lagsource import KafkaLagSource

        return cls(
            KafkaLagSource(kafka, namespace),
            window_s=window_s,
            interval_s=interval_s,
            projector_group=group_name(namespace, "projector"),
        )

    @property
    def window_s(self) -> float:
        """The evaluation window in seconds."""
        return self._tracker.window_s

    def sample_once(self) -> LagReport:
        """Poll now (in the calling thread) and return the new report.

        Raises:
            KafkaUnavailableError: the poll failed (also recorded: every partition turns ERR).
        """
        started = time.monotonic()
        try:
            snapshot = self.source.sample()
        except KafkaUnavailableError as exc:
            with self._lock:
                self._tracker.observe_failure(self._clock(), str(exc))
                self._report = self._tracker.report()
                self._health = SamplerHealth(
                    success=False,
                    duration_s=time.monotonic() - started,
                    last_at=self._health.last_at,
                    errors_total=self._health.errors_total + 1,
                )
            self._sampled.set()
            raise
        with self._lock:
            self._tracker.observe(snapshot)
            report = self._tracker.report()
            self._report = report
            self._health = SamplerHealth(
                success=True,
                duration_s=time.monotonic() - started,
                last_at=snapshot.at,
                errors_total=self._health.errors_total,
            )
        self._sampled.set()
        return report

    def report(self) -> LagReport | None:
        """The latest evaluation (None before the first poll)."""
        with self._lock:
            return self._report

    def snapshot(self) -> tuple[LagReport | None, SamplerHealth]:
        """The latest evaluation and the sampler's health, read together."""
        with self._lock:
            return self._report, self._health

    def wait_for_sample(self, timeout_s: float) -> bool:
        """Wait until a first poll finished (successfully or not); False on timeout."""
        return self._sampled.wait(timeout_s)

    def check_kafka(self, timeout_s: float = 3.0) -> None:
        """Return when a broker answers a metadata request.

        Raises:
            KafkaUnavailableError: it does not.
        """
        self.source.ping(timeout_s)

    @property
    def running(self) -> bool:
        """Whether the sampling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the sampling thread (idempotent)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="mdhub-lag-sampler", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the sampling thread and release the source's clients.

        A poll in progress is not interrupted: when it outlasts ``timeout_s`` the (daemon) thread
        releases the clients itself when the poll ends.
        """
        self._stop.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            self.source.close()
            return
        thread.join(timeout_s)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    self.sample_once()
                except KafkaUnavailableError as exc:
                    _log.warning("lag sampling: %s", exc)
                except Exception:  # the thread's edge: log, keep sampling
                    _log.exception("lag sampling failed")
                self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))
        finally:
            self.source.close()
