"""The dashboard page in headless Chromium, against the hub's own processes on real Kafka and Redis.

``mdhub api`` (with a 6 s lag window polled every second), a worker and the projector run in a
namespace of their own. A producer keeps publishing candidate changes (a few of them invalid) and
an external consumer group reads the source topic more slowly than they arrive, committing as it
goes: its lag grows while it consumes, which the page must show as WARN, with a chart. The test
saves a screenshot to ``tests/artifacts/dashboard.png``.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``.ci/system-deps``), driven by
Playwright for Python; Playwright's own browser download is never used.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException
from harness import ROOT, Hub, wait_for
from playwright.sync_api import Browser, Page, Request, Route, sync_playwright

from conftest import free_ports
from mdhub.naming import Stage, group_name

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
#: This machine's network is closed: no background connections, no QUIC, no component updates.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = ROOT / "tests" / "artifacts" / "dashboard.png"
#: The lag window of the API under test: short, so that a trend shows within seconds.
WINDOW_S = 6
#: The longest the page may take to show the lagging group as WARN with a chart.
DEADLINE_S = 45


class Load:
    """Publishes candidate changes (one in ten invalid) until stopped, about 60 a second."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.stop = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                batch = []
                for _ in range(6):
                    n = self.sent
                    self.sent += 1
                    attributes = {"first_name": f"Ada{n}", "last_name": "Lovelace"}
                    if n % 10 == 9:
                        attributes = {"first_name": f"Nameless{n}"}  # REQUIRED: last_name
                    batch.append(self.hub.change(f"L-{n}", 1, attributes))
                self.hub.publish(batch)
                self.stop.wait(0.1)  # pacing, not synchronisation
        except BaseException as exc:  # reported by the test
            self.error = exc

    def close(self) -> None:
        self.stop.set()
        self._thread.join(30)


class SlowReader:
    """An external consumer group that reads a topic slower than it fills, committing each read."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.group = group
        self.stop = threading.Event()
        self.committed = 0
        self.error: BaseException | None = None
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "broker.address.family": "v4",
                "max.partition.fetch.bytes": 4096,
            }
        )
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, name="slow-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                messages = self._consumer.consume(num_messages=2, timeout=0.2)
                if any(m.error() is None for m in messages):
                    self._consumer.commit(asynchronous=False)
                    self.committed += len(messages)
                self.stop.wait(0.25)  # pacing: about 8 messages a second
        except KafkaException as exc:
            self.error = exc
        finally:
            self._consumer.close()

    def close(self) -> None:
        self.stop.set()
        self._thread.join(30)


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (.ci/system-deps does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def hub(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> Iterator[Hub]:
    hub = Hub(kafka_bootstrap, redis_url, tmp_path, api_port=free_ports(1)[0])
    hub.env["MDHUB_API__LAG_WINDOW_S"] = str(WINDOW_S)
    hub.env["MDHUB_API__LAG_INTERVAL_S"] = "1"
    hub.ensure_topics()
    hub.start("worker", "projector", "api")
    try:
        yield hub
    finally:
        hub.stop_all()


def offline_guard(page: Page) -> list[str]:
    """Abort and record every request that leaves this machine (the page must need none)."""
    outside: list[str] = []

    def route(target: Route, request: Request) -> None:
        host = request.url.split("/")[2] if "://" in request.url else ""
        if request.url.startswith("data:") or host.split(":")[0] in ("127.0.0.1", "localhost"):
            target.continue_()
        else:
            outside.append(request.url)
            target.abort()

    page.route("**/*", route)
    return outside


#: The group's card shows WARN, a lag chart of at least ``points`` points, and a partition that is
#: WARN while its consumer makes progress (consume/s above 0): lag growing while consuming.
WARN_WHILE_CONSUMING = """([group, points]) => {
  const card = document.querySelector(`article.group[data-group="${group}"]`);
  if (!card) return false;
  const badge = card.querySelector(".group-head .badge");
  const line = card.querySelector("svg.chart path.line");
  const segments = line ? (line.getAttribute("d").match(/L/g) || []).length : 0;
  const consuming = [...card.querySelectorAll("table.partitions tbody tr")].some((row) => {
    const cells = row.querySelectorAll("td");
    return cells[2].textContent === "WARN" && parseFloat(cells[5].textContent) > 0;
  });
  return badge !== null && badge.dataset.status === "WARN" && segments + 1 >= points && consuming;
}"""
#: The first throughput card (messages/s into the source topics) shows a rate above 0.
SOURCE_FLOWING = """() => {
  const value = document.querySelector("#stage-cards .card .value");
  return value !== null && parseFloat(value.firstChild.textContent.replace(/,/g, "")) > 0;
}"""


def test_the_page_shows_a_lagging_group_as_warn_with_a_chart(hub: Hub, browser: Browser) -> None:
    source = hub.topic("customer", Stage.SOURCE)
    lagging = f"{hub.namespace}-crm-export-{uuid.uuid4().hex[:6]}"
    worker = group_name(hub.namespace, "worker")
    load = Load(hub)
    load.start()
    reader: SlowReader | None = None
    try:
        wait_for(lambda: hub.api_status("/healthz") == 200, 30, "the API to listen")
        wait_for(lambda: load.sent >= 60, 10, "a backlog on the source topic")
        reader = SlowReader(hub.settings.kafka.bootstrap_servers, lagging, source)
        reader.start()

        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        outside = offline_guard(page)
        page.goto(f"http://127.0.0.1:{hub.api_port}/dashboard", wait_until="load")

        # the lagging group: WARN while it consumes, with a lag chart of a few points
        page.wait_for_function(WARN_WHILE_CONSUMING, arg=[lagging, 4], timeout=DEADLINE_S * 1000)
        card = page.locator(f'article.group[data-group="{lagging}"]')
        assert "lag grew" in card.locator(".reason").inner_text()
        assert set(card.locator("table.partitions .badge").all_inner_texts()) <= {"OK", "WARN"}
        # the hub's own worker is there too, and the source stage shows messages coming in
        page.wait_for_selector(f'article.group[data-group="{worker}"] .badge', timeout=20_000)
        page.wait_for_function(SOURCE_FLOWING, timeout=10_000)
        # the worker's quiet partitions (nothing comes in for products) fold away until asked for
        quiet = f'article.group[data-group="{worker}"] tr[data-topic="{hub.topic("product", Stage.RESOLVE)}"]'
        assert page.locator(quiet).count() == 0
        page.locator(f'article.group[data-group="{worker}"] button.fold').click()
        page.wait_for_selector(quiet, timeout=5_000)
        assert page.locator('.pill[data-probe="kafka"]').get_attribute("data-ok") == "true"
        assert page.locator('.pill[data-probe="redis"]').get_attribute("data-ok") == "true"

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        assert SCREENSHOT.stat().st_size > 10_000
        assert errors == [], f"the page raised: {errors}"
        assert outside == [], f"the page asked for outside resources: {outside}"
        assert load.error is None and reader.error is None
    finally:
        if reader is not None:
            reader.close()
        load.close()
