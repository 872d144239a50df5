"""The REST read API: golden records, their history and cross-references from the Redis views.

Every error is an RFC 9457 problem (``application/problem+json``). While Redis is unreachable the
data endpoints and ``/readyz`` answer 503 with ``Retry-After``; ``/healthz`` never touches Redis.
The cache is synchronous (redis-py), so the endpoints are plain ``def`` functions, which FastAPI
runs in its threadpool instead of on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from http import HTTPStatus
from typing import Annotated, Any, Final

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from mdhub.cache.views import GoldenCache
from mdhub.errors import MdhubError, RedisUnavailableError
from mdhub.ops.monitor import LagMonitor

__all__ = [
    "PROBLEM_JSON",
    "CauseOut",
    "ChangeEventOut",
    "GoldenAtVersionOut",
    "HistoryPage",
    "Problem",
    "XrefOut",
    "create_app",
]

PROBLEM_JSON: Final = "application/problem+json"

_log = logging.getLogger(__name__)

_TYPE_PREFIX: Final = "urn:mdhub:problem:"
_TAG_GOLDEN: Final = "golden records"
_TAG_HISTORY: Final = "history"
_TAG_XREF: Final = "cross-references"
_TAG_HEALTH: Final = "health"

#: Most change events one history page holds.
MAX_HISTORY_LIMIT: Final = 500


class Problem(BaseModel):
    """An RFC 9457 problem detail, plus mdhub's extension members."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI naming the kind of problem")
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="the request path")
    retryable: bool = Field(default=False, description="whether the same request may succeed later")


class XrefOut(BaseModel):
    """Which golden record a source record contributes to."""

    entity: str
    source: str
    source_key: str
    golden_id: str


class CauseOut(BaseModel):
    """What made a golden version: a source change or a steward command."""

    kind: str = Field(description="source_change or steward_command")
    id: str = Field(description="the change id (or command id) that caused the version")
    source: str | None = None
    source_key: str | None = None


class ChangeEventOut(BaseModel):
    """One accepted version of a golden record, with what changed."""

    golden_id: str
    entity: str
    version: int
    status: str = Field(description="active, retired or merged")
    changed: list[str] = Field(description="the attributes this version changed")
    before: dict[str, Any] = Field(description="their values before (null: no value)")
    after: dict[str, Any] = Field(description="their values after (null: removed)")
    cause: CauseOut
    occurred_at: str = Field(description="when the causing change happened (ISO 8601, UTC)")


class HistoryPage(BaseModel):
    """A page of a golden record's history, newest version first."""

    entity: str
    golden_id: str
    items: list[ChangeEventOut]
    next_before_version: int | None = Field(
        description="pass as before_version to get the next (older) page; null on the last page"
    )


class GoldenAtVersionOut(BaseModel):
    """A golden record as it was at one version, rebuilt from its history."""

    golden_id: str
    entity: str | None = None
    version: int
    status: str
    occurred_at: str = Field(description="when the change that made this version happened")
    attributes: dict[str, Any] = Field(description="every attribute with a value at that version")


class _ProblemError(Exception):
    """Raised inside the app to answer with a problem."""

    def __init__(self, status: int, kind: str, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.extensions = extensions


def _problem(
    request: Request,
    status: int,
    kind: str,
    detail: str,
    *,
    title: str | None = None,
    retryable: bool = False,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = Problem(
        type=_TYPE_PREFIX + kind,
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        retryable=retryable,
        **extensions,
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


def _problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "model": Problem,
            "content": {PROBLEM_JSON: {}},
            "description": HTTPStatus(status).phrase,
        }
        for status in statuses
    }


def create_app(
    cache: GoldenCache,
    entities: Collection[str],
    *,
    title: str = "mdhub",
    retry_after_s: int = 5,
    ops: LagMonitor | None = None,
    worker_check: Callable[[], None] | None = None,
) -> FastAPI:
    """Build the read API over ``cache`` for the entity types in ``entities``.

    Args:
        cache: the golden read views; its calls are blocking and run in the threadpool.
        entities: the entity types of the model; any other answers 404.
        title: the OpenAPI title.
        retry_after_s: the ``Retry-After`` sent with a 503.
        ops: the consumer-lag monitor; with it the app serves ``/metrics`` and ``/readyz`` also
            checks Kafka (see :func:`_mount_ops`).
    """
    known = frozenset(entities)
    known_list = sorted(known)
    app = FastAPI(
        title=title,
        summary="Read API of the master data hub: golden records, history and cross-references.",
        openapi_tags=[
            {
                "name": _TAG_GOLDEN,
                "description": "A golden record of an entity: the current one, or as of a version.",
            },
            {"name": _TAG_HISTORY, "description": "Every version of a golden record."},
            {"name": _TAG_XREF, "description": "Which golden record a source record belongs to."},
            {"name": _TAG_HEALTH, "description": "Liveness and readiness probes."},
        ],
    )

    def check_entity(entity: str) -> None:
        if entity not in known:
            raise _ProblemError(
                404,
                "unknown-entity",
                f"unknown entity type {entity!r}; known: {', '.join(known_list) or '(none)'}",
                known_entities=known_list,
            )

    @app.exception_handler(_ProblemError)
    def _on_problem(request: Request, exc: _ProblemError) -> JSONResponse:
        return _problem(request, exc.status, exc.kind, exc.detail, **exc.extensions)

    @app.exception_handler(RedisUnavailableError)
    def _on_unavailable(request: Request, exc: RedisUnavailableError) -> JSONResponse:
        _log.warning("%s %s: %s", request.method, request.url.path, exc)
        return _problem(
            request,
            503,
            "redis-unavailable",
            f"the read views cannot be reached right now; retry in {retry_after_s} s",
            title="Redis unavailable",
            retryable=True,
            headers={"Retry-After": str(retry_after_s)},
        )

    @app.exception_handler(MdhubError)
    def _on_mdhub_error(request: Request, exc: MdhubError) -> JSONResponse:
        _log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _problem(request, 500, "internal-error", "the request could not be served")

    @app.exception_handler(StarletteHTTPException)
    def _on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not-found" if exc.status_code == 404 else f"http-{exc.status_code}"
        return _problem(
            request, exc.status_code, kind, str(exc.detail), headers=dict(exc.headers or {})
        )

    @app.exception_handler(RequestValidationError)
    def _on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return _problem(request, 422, "invalid-request", "the request is invalid", errors=errors)

    @app.exception_handler(Exception)
    def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _problem(request, 500, "internal-error", "the request could not be served")

    @app.get(
        "/v1/{entity}/golden/{golden_id}",
        tags=[_TAG_GOLDEN],
        summary="Get a golden record",
        description=(
            "The latest version of the golden record, as published on the golden topic. With "
            "`version`, the record as it was at that version instead, rebuilt from its history: "
            "`golden_id`, `entity`, `version`, `status`, `occurred_at` and `attributes` "
            "(the `GoldenAtVersionOut` schema)."
        ),
        response_model=None,
        responses={
            200: {
                "description": "The golden record (or, with `version`, a GoldenAtVersionOut)",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            **_problem_responses(404, 503),
        },
    )
    def get_golden(
        entity: Annotated[str, Path(description="entity type, e.g. customer")],
        golden_id: Annotated[str, Path(description="golden record id")],
        version: Annotated[
            int | None,
            Query(ge=1, description="the version to show, as it was then; omit for the latest"),
        ] = None,
    ) -> JSONResponse:
        check_entity(entity)
        if version is not None:
            past = cache.get_version(entity, golden_id, version)
            if past is None:
                raise _ProblemError(
                    404,
                    "not-found",
                    f"no version {version} of {entity} golden record {golden_id!r}",
                    golden_id=golden_id,
                    version=version,
                )
            return JSONResponse(GoldenAtVersionOut.model_validate(past).model_dump(mode="json"))
        doc = cache.get_golden(entity, golden_id)
        if doc is None:
            raise _ProblemError(
                404, "not-found", f"no {entity} golden record {golden_id!r}", golden_id=golden_id
            )
        return JSONResponse(doc)

    @app.get(
        "/v1/{entity}/golden/{golden_id}/history",
        tags=[_TAG_HISTORY],
        summary="List the versions of a golden record",
        description=(
            "The change events of the golden record, newest version first, in pages: pass "
            "`next_before_version` of a page as `before_version` to get the next one."
        ),
        response_model=HistoryPage,
        responses=_problem_responses(404, 503),
    )
    def get_history(
        entity: Annotated[str, Path(description="entity type, e.g. customer")],
        golden_id: Annotated[str, Path(description="golden record id")],
        limit: Annotated[
            int, Query(ge=1, le=MAX_HISTORY_LIMIT, description="most versions in the page")
        ] = 50,
        before_version: Annotated[
            int | None, Query(ge=1, description="only versions older than this one")
        ] = None,
    ) -> HistoryPage:
        check_entity(entity)
        # one more than asked tells whether an older page exists
        found = cache.get_history(entity, golden_id, limit=limit + 1, before_version=before_version)
        items = [ChangeEventOut.model_validate(event) for event in found[:limit]]
        if not items and (
            before_version is None or not cache.get_history(entity, golden_id, limit=1)
        ):
            raise _ProblemError(
                404,
                "not-found",
                f"no history of {entity} golden record {golden_id!r}",
                golden_id=golden_id,
            )
        more = len(found) > limit
        return HistoryPage(
            entity=entity,
            golden_id=golden_id,
            items=items,
            next_before_version=items[-1].version if more else None,
        )

    @app.get(
        "/v1/{entity}/xref/{source}/{source_key:path}",
        tags=[_TAG_XREF],
        summary="Find the golden record of a source record",
        response_model=XrefOut,
        responses=_problem_responses(404, 503),
    )
    def get_xref(
        entity: Annotated[str, Path(description="entity type, e.g. customer")],
        source: Annotated[str, Path(description="source system, e.g. crm")],
        source_key: Annotated[str, Path(description="the record's key in the source system")],
    ) -> XrefOut:
        check_entity(entity)
        golden_id = cache.get_xref(entity, source, source_key)
        if golden_id is None:
            raise _ProblemError(
                404,
                "not-found",
                f"source record {source}:{source_key} is not linked to any {entity} golden record",
            )
        return XrefOut(entity=entity, source=source, source_key=source_key, golden_id=golden_id)

    @app.get(
        "/healthz",
        tags=[_TAG_HEALTH],
        summary="Liveness: the process answers (Redis is not checked)",
    )
    async def healthz() -> dict[str, str]:
        # async on purpose: it must answer even when every threadpool worker waits on Redis
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=[_TAG_HEALTH],
        summary="Readiness: Redis answers (and Kafka, when the app monitors lag)",
        responses=_problem_responses(503),
    )
    def readyz() -> dict[str, Any]:
        if ops is None:
            cache.ping()
            return {"status": "ready"}
        return _readiness(cache, ops, retry_after_s, worker_check)

    if ops is not None:
        _mount_ops(app, ops)
    return app


# -- operations: /metrics and Kafka readiness (consumer-lag monitor) ----------------------------

_TAG_OPS: Final = "operations"
#: How long the first scrape after start waits for the first offset poll.
_FIRST_SAMPLE_WAIT_S: Final = 5.0


def _readiness(
    cache: GoldenCache,
    ops: LagMonitor,
    retry_after_s: int,
    worker_check: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Check Redis, Kafka and (when given) the stream workers; a 503 problem names what is down."""
    checks: dict[str, str] = {}
    try:
        cache.ping()
        checks["redis"] = "ok"
    except RedisUnavailableError as exc:
        checks["redis"] = str(exc)
    try:
        ops.check_kafka()
        checks["kafka"] = "ok"
    except MdhubError as exc:
        checks["kafka"] = str(exc)
    if worker_check is not None and checks["kafka"] == "ok":
        try:
            worker_check()
            checks["worker"] = "ok"
        except MdhubError as exc:
            checks["worker"] = str(exc)
    down = [name for name, state in checks.items() if state != "ok"]
    if not down:
        return {"status": "ready", "checks": checks}
    names = {"redis": "Redis", "kafka": "Kafka", "worker": "stream worker"}
    title = " and ".join(names[d] for d in down) + " unavailable"
    raise _ProblemError(
        503,
        f"{down[0]}-unavailable" if len(down) == 1 else "unavailable",
        f"not ready: {'; '.join(f'{names[d]}: {checks[d]}' for d in down)}; "
        f"retry in {retry_after_s} s",
        title=title,
        retryable=True,
        headers={"Retry-After": str(retry_after_s)},
        down=down,
        checks=checks,
    )


def _mount_ops(app: FastAPI, ops: LagMonitor) -> None:
    """Serve ``GET /metrics``: consumer lag and status in Prometheus' text format.

    The monitor samples in its own thread (started here if the composition root has not), so a
    scrape reads its latest report and never waits on Kafka, except the very first one, which
    waits a few seconds for the first poll.
    """

    @app.get(
        "/metrics",
        tags=[_TAG_OPS],
        summary="Prometheus metrics: consumer lag, status and rates per group and partition",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "metrics"}},
    )
    def metrics() -> Response:
        if not ops.running:
            ops.start()
        ops.wait_for_sample(_FIRST_SAMPLE_WAIT_S)
        return Response(generate_latest(ops.registry), media_type=CONTENT_TYPE_LATEST)
