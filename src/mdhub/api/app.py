"""The REST API: golden records, their history, cross-references, match explanations and the
review queue from the Redis views, and steward commands sent to the commands topic.

Every error is an RFC 9457 problem (``application/problem+json``). While Redis is unreachable the
data endpoints and ``/readyz`` answer 503 with ``Retry-After``; ``/healthz`` never touches Redis.
So do the command endpoints while Kafka does not take a command. The cache is synchronous
(redis-py), so the endpoints are plain ``def`` functions, which FastAPI runs in its threadpool
instead of on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from http import HTTPStatus
from typing import Annotated, Any, Final, Literal
from urllib.parse import quote

from fastapi import Body, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from mdhub.cache.views import GoldenCache
from mdhub.domain.commands import Action, StewardCommand
from mdhub.errors import KafkaUnavailableError, MdhubError, PublishError, RedisUnavailableError
from mdhub.ops.monitor import LagMonitor
from mdhub.stewarding import (
    MAX_REDIRECTS,
    REQUIRED_FIELDS,
    Redirect,
    decision_command,
    explanation,
    follow_merges,
    new_command,
    where_now,
)

__all__ = [
    "PROBLEM_JSON",
    "CauseOut",
    "ChangeEventOut",
    "CommandIn",
    "CommandSentOut",
    "ContributionOut",
    "DecisionIn",
    "ExplanationOut",
    "GoldenAtVersionOut",
    "HistoryPage",
    "LinkExplanationOut",
    "PotentialMatchOut",
    "Problem",
    "ReviewPage",
    "XrefOut",
    "create_app",
]

PROBLEM_JSON: Final = "application/problem+json"

_log = logging.getLogger(__name__)

_TYPE_PREFIX: Final = "urn:mdhub:problem:"
_TAG_GOLDEN: Final = "golden records"
_TAG_HISTORY: Final = "history"
_TAG_XREF: Final = "cross-references"
_TAG_REVIEW: Final = "review queue"
_TAG_COMMANDS: Final = "steward commands"
_TAG_HEALTH: Final = "health"

#: Most change events one history page holds.
MAX_HISTORY_LIMIT: Final = 500
#: Most potential matches one review page holds.
MAX_REVIEW_LIMIT: Final = 500


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


class ContributionOut(BaseModel):
    """One comparator's part in a match score."""

    attribute: str
    method: str = Field(description="the comparator, e.g. jaro_winkler or exact")
    similarity: float | None = Field(description="0..1; null when either record lacks the value")
    weight: float = Field(description="its part in the score (log2 units; negative: disagreement)")
    detail: str = Field(default="", description="how a special agreement came about: nickname...")


class LinkExplanationOut(BaseModel):
    """Why one source record belongs to its golden record."""

    source: str
    source_key: str
    deleted: bool = Field(description="the source deleted the record (it no longer contributes)")
    method: str | None = Field(
        description="created, matched, rule, steward_link or split; null: linked before identity "
        "resolution recorded links"
    )
    decided_at: str | None = None
    score: float | None = Field(default=None, description="the match score, when scored")
    matched_ref: str | None = Field(default=None, description="the source record it matched")
    blocking_key: str | None = Field(default=None, description="the block that found that one")
    rule: str | None = Field(default=None, description="the deterministic rule that decided")
    contributions: list[ContributionOut] = Field(description="largest |weight| first")
    command_id: str | None = Field(default=None, description="the steward command that decided")
    merged_from: str | None = Field(
        default=None, description="the golden record it came with when that one merged into this"
    )
    reason: str = Field(description="the explanation in one line")


class ExplanationOut(BaseModel):
    """How each source record of a golden record came to belong to it."""

    entity: str
    golden_id: str = Field(description="the golden record explained (the survivor of merges)")
    version: int | None = None
    status: str | None = None
    redirected_from: str | None = Field(
        default=None, description="the id asked for, when it was merged into golden_id"
    )
    sources: list[LinkExplanationOut]


class PotentialMatchOut(BaseModel):
    """A pair of source records that may be one entity, for a steward to decide."""

    pair_id: str
    status: str = Field(description="open, accepted or rejected")
    ref: str = Field(description="the source record that was resolved (<source>:<source_key>)")
    golden_id: str = Field(description="its golden record when the pair was found")
    candidate_ref: str = Field(description="the source record it may be the same entity as")
    candidate_golden_id: str
    score: float
    blocking_key: str | None = None
    contributions: list[ContributionOut]
    detected_at: str
    decided_by: str | None = Field(default=None, description="the deciding steward command")
    decided_at: str | None = None
    golden_id_now: str | None = Field(
        default=None, description="the golden record `ref` belongs to now (null: unknown)"
    )
    candidate_golden_id_now: str | None = Field(
        default=None, description="the golden record `candidate_ref` belongs to now"
    )
    same_golden_now: bool = Field(
        default=False,
        description="both records are in one golden record now (joined since the pair was "
        "found): accepting changes nothing",
    )


class ReviewPage(BaseModel):
    """A page of the review queue: open potential matches, oldest first."""

    entity: str
    total: int = Field(description="open potential matches in the queue")
    offset: int
    limit: int
    items: list[PotentialMatchOut]


class DecisionIn(BaseModel):
    """Who decides a potential match, and why (both optional, kept with the command)."""

    model_config = ConfigDict(extra="forbid")

    by: str | None = Field(default=None, max_length=200)
    reason: str | None = Field(default=None, max_length=2000)


_CommandAction = Literal[
    "link",
    "split",
    "merge",
    "not_match",
    "undo_not_match",
    "override",
    "clear_override",
    "erase",
]


class CommandIn(BaseModel):
    """A steward command. Which fields an action needs:

    * link, not_match, undo_not_match: ``source_ref``, ``other_ref``
    * split: ``golden_id``, ``source_ref``
    * merge: ``golden_id``, ``other_golden_id``
    * override: ``golden_id``, ``attribute``, ``value``
    * clear_override: ``golden_id``, ``attribute``
    * erase: ``golden_id``
    """

    model_config = ConfigDict(extra="forbid")

    action: _CommandAction
    golden_id: str | None = None
    source_ref: str | None = Field(default=None, description="<source>:<source_key>")
    other_ref: str | None = Field(default=None, description="<source>:<source_key>")
    other_golden_id: str | None = None
    attribute: str | None = None
    value: StrictStr | StrictBool | StrictInt | StrictFloat | list[StrictStr] | None = Field(
        default=None, description="override: the value (dates ISO 8601, lists of text)"
    )
    by: str | None = Field(default=None, max_length=200, description="who decided")
    reason: str | None = Field(default=None, max_length=2000, description="why")


class CommandSentOut(BaseModel):
    """A command Kafka has taken; the worker applies it shortly (refusals go to the rejected topic)."""

    command_id: str
    entity: str
    action: str
    golden_id: str | None = None
    source_ref: str | None = None
    other_ref: str | None = None
    other_golden_id: str | None = None
    pair_id: str | None = None
    attribute: str | None = None


def _sent(command: StewardCommand) -> CommandSentOut:
    return CommandSentOut(
        command_id=command.command_id,
        entity=command.entity,
        action=command.action.value,
        golden_id=command.golden_id or None,
        source_ref=command.source_ref,
        other_ref=command.other_ref,
        other_golden_id=command.other_golden_id,
        pair_id=command.pair_id,
        attribute=command.attribute,
    )


def _golden_path(entity: str, golden_id: str) -> str:
    return f"/v1/{entity}/golden/{quote(golden_id, safe='')}"


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
    send_command: Callable[[StewardCommand], None] | None = None,
) -> FastAPI:
    """Build the API over ``cache`` for the entity types in ``entities``.

    Args:
        cache: the golden read views; its calls are blocking and run in the threadpool.
        entities: the entity types of the model; any other answers 404.
        title: the OpenAPI title.
        retry_after_s: the ``Retry-After`` sent with a 503.
        ops: the consumer-lag monitor; with it the app serves ``/metrics`` and ``/readyz`` also
            checks Kafka (see :func:`_mount_ops`).
        worker_check: raises when the stream workers are not consuming (``/readyz``).
        send_command: publishes a steward command and returns once Kafka has it (blocking; see
            :class:`mdhub.stewarding.CommandSender`), raising ``KafkaUnavailableError`` or
            ``PublishError`` when it cannot; ``None``: the command endpoints answer 503.
    """
    known = frozenset(entities)
    known_list = sorted(known)
    app = FastAPI(
        title=title,
        summary="API of the master data hub: golden records, history, cross-references, match "
        "explanations, the review queue and steward commands.",
        openapi_tags=[
            {
                "name": _TAG_GOLDEN,
                "description": "A golden record of an entity: the current one, or as of a version.",
            },
            {"name": _TAG_HISTORY, "description": "Every version of a golden record."},
            {"name": _TAG_XREF, "description": "Which golden record a source record belongs to."},
            {
                "name": _TAG_REVIEW,
                "description": "Potential matches waiting for a data steward, and their decisions.",
            },
            {
                "name": _TAG_COMMANDS,
                "description": "Data-steward commands (link, split, merge, not-match, override, "
                "erase), sent to the entity's commands topic and applied by the worker.",
            },
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

    def current(entity: str, golden_id: str) -> Redirect:
        """The golden record, following merges; a problem when there is none to show."""
        found = follow_merges(cache, entity, golden_id)
        if found.doc is not None:
            return found
        if found.too_long:
            _log.error("merge chain of %s %s: %s", entity, golden_id, " -> ".join(found.path))
            raise _ProblemError(
                500,
                "merge-chain-too-long",
                f"{entity} golden record {golden_id!r} was merged more than {MAX_REDIRECTS} times "
                "over (or in a loop); the survivor cannot be shown",
                golden_id=golden_id,
                path=list(found.path),
            )
        if found.redirected:
            raise _ProblemError(
                404,
                "not-found",
                f"{entity} golden record {golden_id!r} was merged into {found.path[-1]!r}, "
                "which is not in the read views",
                golden_id=golden_id,
                merged_into=found.path[-1],
            )
        raise _ProblemError(
            404, "not-found", f"no {entity} golden record {golden_id!r}", golden_id=golden_id
        )

    def send(command: StewardCommand) -> CommandSentOut:
        if send_command is None:
            raise _ProblemError(
                503,
                "commands-disabled",
                "commands are not enabled in this API",
                title="Commands not enabled",
            )
        try:
            send_command(command)
        except (KafkaUnavailableError, PublishError) as exc:
            _log.warning("%s command %s not sent: %s", command.action, command.command_id, exc)
            raise _ProblemError(
                503,
                "kafka-unavailable",
                f"the command could not be sent to Kafka; retry in {retry_after_s} s",
                title="Kafka unavailable",
                retryable=True,
                headers={"Retry-After": str(retry_after_s)},
            ) from exc
        return _sent(command)

    @app.get(
        "/v1/{entity}/golden/{golden_id}",
        tags=[_TAG_GOLDEN],
        summary="Get a golden record",
        description=(
            "The latest version of the golden record, as published on the golden topic. A record "
            "that was merged into another one answers with the surviving record (following up to "
            f"{MAX_REDIRECTS} merges), plus `redirected_from` (the id asked for) and a "
            "`Content-Location` header naming the survivor. With `version`, the record as it was "
            "at that version instead, rebuilt from its history (no redirect): `golden_id`, "
            "`entity`, `version`, `status`, `occurred_at` and `attributes` "
            "(the `GoldenAtVersionOut` schema)."
        ),
        response_model=None,
        responses={
            200: {
                "description": "The golden record (or, with `version`, a GoldenAtVersionOut)",
                "content": {"application/json": {"schema": {"type": "object"}}},
                "headers": {
                    "Content-Location": {
                        "description": "the surviving record, when the one asked for was merged",
                        "schema": {"type": "string"},
                    }
                },
            },
            **_problem_responses(404, 500, 503),
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
        found = current(entity, golden_id)
        if not found.redirected:
            return JSONResponse(found.doc)
        survivor = found.path[-1]
        return JSONResponse(
            {**(found.doc or {}), "redirected_from": golden_id},
            headers={"Content-Location": _golden_path(entity, survivor)},
        )

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
        "/v1/{entity}/golden/{golden_id}/explain",
        tags=[_TAG_GOLDEN],
        summary="Explain why each source record belongs to a golden record",
        description=(
            "Per source record: how it was linked (created, matched, rule, steward_link, split), "
            "the candidate it matched, its score and the block that found it, the comparators' "
            "contributions (largest first) and a one-line `reason`. A merged record is explained "
            "through its survivor (`redirected_from` names the id asked for)."
        ),
        response_model=ExplanationOut,
        responses=_problem_responses(404, 500, 503),
    )
    def explain_golden(
        entity: Annotated[str, Path(description="entity type, e.g. customer")],
        golden_id: Annotated[str, Path(description="golden record id")],
        response: Response,
    ) -> ExplanationOut:
        check_entity(entity)
        found = current(entity, golden_id)
        if found.redirected:
            response.headers["Content-Location"] = _golden_path(entity, found.path[-1]) + "/explain"
        return ExplanationOut.model_validate(explanation(entity, found))

    @app.get(
        "/v1/{entity}/review",
        tags=[_TAG_REVIEW],
        summary="List the open potential matches, oldest first",
        description=(
            "Pairs of source records whose score fell between the review and match thresholds "
            "(or matched too closely to another golden record as well to tell which one), "
            "waiting for a steward to accept or reject them, in pages (`offset`, `limit`), "
            "with where both records are now (`same_golden_now`: joined since)."
        ),
        response_model=ReviewPage,
        responses=_problem_responses(404, 503),
    )
    def list_reviews(
        entity: Annotated[str, Path(description="entity type, e.g. customer")],
        offset: Annotated[int, Query(ge=0, description="open pairs to skip")] = 0,
        limit: Annotated[
            int, Query(ge=1, le=MAX_REVIEW_LIMIT, description="most pairs in the page")
        ] = 50,
    ) -> ReviewPage:
        check_entity(entity)
        total, docs = cache.list_reviews(entity, offset=offset, limit=limit)
        return ReviewPage(
            entity=entity,
            total=total,
            offset=offset,
            limit=limit,
            items=[PotentialMatchOut.model_validate(d) for d in where_now(cache, entity, docs)],
        )

    def open_pair(entity: str, pair_id: str) -> dict[str, Any]:
        pair = cache.get_review(entity, pair_id)
        if pair is None:
            raise _ProblemError(
                404, "not-found", f"no {entity} potential match {pair_id!r}", pair_id=pair_id
            )
        return pair

    @app.get(
        "/v1/{entity}/review/{pair_id}",
        tags=[_TAG_REVIEW],
        summary="Get a potential match (open or decided)",
        response_model=PotentialMatchOut,
        responses=_problem_responses(404, 503),
    )
    def get_review(
        entity: Annotated[str, Path(description="entity type, e.g. customer")],
        pair_id: Annotated[str, Path(description="the pair's id")],
    ) -> PotentialMatchOut:
        check_entity(entity)
        (pair,) = where_now(cache, entity, [open_pair(entity, pair_id)])
        return PotentialMatchOut.model_validate(pair)

    def decide(entity: str, pair_id: str, body: DecisionIn | None, accept: bool) -> CommandSentOut:
        check_entity(entity)
        pair = open_pair(entity, pair_id)
        if pair.get("status") != "open":
            raise _ProblemError(
                409,
                "already-decided",
                f"{entity} potential match {pair_id!r} was already {pair.get('status')}"
                + (f" by command {pair['decided_by']}" if pair.get("decided_by") else ""),
                pair_id=pair_id,
                review_status=pair.get("status"),
                decided_by=pair.get("decided_by"),
            )
        body = body or DecisionIn()
        command = decision_command(
            entity, pair, accept=accept, issued_by=body.by, reason=body.reason
        )
        return send(command)

    decision_responses = _problem_responses(404, 409, 422, 503)

    @app.post(
        "/v1/{entity}/review/{pair_id}/accept",
        tags=[_TAG_REVIEW],
        summary="Accept a potential match: the two source records are one entity",
        description=(
            "Sends an `accept_match` command; the worker links the two source records (merging "
            "their golden records) and marks the pair accepted. 202 once Kafka has the command."
        ),
        status_code=202,
        response_model=CommandSentOut,
        response_model_exclude_none=True,
        responses=decision_responses,
    )
    def accept_review(
        entity: Annotated[str, Path(description="entity type, e.g. customer")],
        pair_id: Annotated[str, Path(description="the pair's id")],
        body: Annotated[DecisionIn | None, Body()] = None,
    ) -> CommandSentOut:
        return decide(entity, pair_id, body, accept=True)

    @app.post(
        "/v1/{entity}/review/{pair_id}/reject",
        tags=[_TAG_REVIEW],
        summary="Reject a potential match: the two source records are different entities",
        description=(
            "Sends a `reject_match` command; the worker records that the two source records never "
            "match and marks the pair rejected. 202 once Kafka has the command."
        ),
        status_code=202,
        response_model=CommandSentOut,
        response_model_exclude_none=True,
        responses=decision_responses,
    )
    def reject_review(
        entity: Annotated[str, Path(description="entity type, e.g. customer")],
        pair_id: Annotated[str, Path(description="the pair's id")],
        body: Annotated[DecisionIn | None, Body()] = None,
    ) -> CommandSentOut:
        return decide(entity, pair_id, body, accept=False)

    @app.post(
        "/v1/{entity}/commands",
        tags=[_TAG_COMMANDS],
        summary="Send a steward command",
        description=(
            "Checks that the action has the fields it needs and sends the command to the "
            "entity's commands topic; 202 once Kafka has it. The worker applies it and publishes "
            "new golden versions; a command it cannot apply lands on the rejected topic with its "
            "reasons."
        ),
        status_code=202,
        response_model=CommandSentOut,
        response_model_exclude_none=True,
        responses=_problem_responses(404, 422, 503),
    )
    def post_command(
        entity: Annotated[str, Path(description="entity type, e.g. customer")],
        body: CommandIn,
    ) -> CommandSentOut:
        check_entity(entity)
        action = Action(body.action)
        fields = body.model_dump()
        missing = [name for name in REQUIRED_FIELDS[action] if fields.get(name) in (None, "")]
        if missing:
            raise _ProblemError(
                422,
                "invalid-request",
                f"{action.value} needs {' and '.join(missing)}",
                errors=[
                    {"loc": ["body", name], "msg": f"required for {action.value}"}
                    for name in missing
                ],
            )
        # only the fields of the action go into the command (and golden_id picks its Kafka key)
        used = {name: fields[name] for name in REQUIRED_FIELDS[action]}
        if isinstance(used.get("value"), list):
            used["value"] = tuple(used["value"])
        try:
            command = new_command(entity, action, **used, issued_by=body.by, reason=body.reason)
        except ValueError as exc:
            raise _ProblemError(422, "invalid-request", str(exc)) from exc
        return send(command)

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
