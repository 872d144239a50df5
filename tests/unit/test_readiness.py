"""/readyz names every dependency that is down: Redis, Kafka, and stream workers without partitions."""

from __future__ import annotations

import asyncio

import httpx

from mdhub.api.app import create_app
from mdhub.errors import MdhubError
from mdhub.ops.lag import LagSnapshot
from mdhub.ops.monitor import LagMonitor
from mdhub.testing import InMemoryGoldenCache


class _Source:
    def sample(self) -> LagSnapshot:
        return LagSnapshot(at=0.0, offsets={})

    def ping(self, timeout_s: float | None = None) -> None:
        return None

    def close(self) -> None:
        return None


def _get(app: object, path: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(path)

    return asyncio.run(call())


def test_ready_when_a_worker_has_partitions() -> None:
    app = create_app(
        InMemoryGoldenCache(), ["customer"], ops=LagMonitor(_Source()), worker_check=lambda: None
    )
    response = _get(app, "/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"redis": "ok", "kafka": "ok", "worker": "ok"}


def test_not_ready_without_a_worker_and_the_problem_says_so() -> None:
    def no_worker() -> None:
        raise MdhubError("no stream worker has partitions assigned; start one with `mdhub worker`")

    app = create_app(
        InMemoryGoldenCache(), ["customer"], ops=LagMonitor(_Source()), worker_check=no_worker
    )
    response = _get(app, "/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["down"] == ["worker"]
    assert "mdhub worker" in body["detail"]
