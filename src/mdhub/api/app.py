"""The REST read API: golden records and cross-references from the Redis read views.

Every error is an RFC 9457 problem (``application/problem+json``). While Redis is unreachable the
data endpoints and ``/readyz`` answer 503 with ``Retry-After``; ``/healthz`` never touches Redis.
The cache is synchronous (redis-py), so the endpoints are plain ``def`` functions, which FastAPI
runs in its threadpool instead of on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from http import HTTPStatus
from typing import Annotated, Any, Final

from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from mdhub.cache.views import GoldenCache
from mdhub.errors import MdhubError, RedisUnavailableError

__all__ = ["PROBLEM_JSON", "Problem", "XrefOut", "create_app"]

PROBLEM_JSON: Final = "application/problem+json"

_log = logging.getLogger(__name__)

_TYPE_PREFIX: Final = "urn:mdhub:problem:"
_TAG_GOLDEN: Final = "golden records"
_TAG_XREF: Final = "cross-references"
_TAG_HEALTH: Final = "health"


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
) -> FastAPI:
    """Build the read API over ``cache`` for the entity types in ``entities``.

    Args:
        cache: the golden read views; its calls are blocking and run in the threadpool.
        entities: the entity types of the model; any other answers 404.
        title: the OpenAPI title.
        retry_after_s: the ``Retry-After`` sent with a 503.
    """
    known = frozenset(entities)
    known_list = sorted(known)
    app = FastAPI(
        title=title,
        summary="Read API of the master data hub: golden records and cross-references.",
        openapi_tags=[
            {"name": _TAG_GOLDEN, "description": "The current golden record of an entity."},
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
        description="The latest version of the golden record, as published on the golden topic.",
        response_model=None,
        responses={
            200: {
                "description": "The golden record",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            **_problem_responses(404, 503),
        },
    )
    def get_golden(
        entity: Annotated[str, Path(description="entity type, e.g. customer")],
        golden_id: Annotated[str, Path(description="golden record id")],
    ) -> JSONResponse:
        check_entity(entity)
        doc = cache.get_golden(entity, golden_id)
        if doc is None:
            raise _ProblemError(
                404, "not-found", f"no {entity} golden record {golden_id!r}", golden_id=golden_id
            )
        return JSONResponse(doc)

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
        summary="Readiness: Redis answers",
        responses=_problem_responses(503),
    )
    def readyz() -> dict[str, str]:
        cache.ping()
        return {"status": "ready"}

    return app
