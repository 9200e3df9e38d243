"""JSON endpoints under ``/api`` (described by the OpenAPI schema at ``/api/openapi.json``).

Public: ``/api/health`` and ``/api/newsletters``.  Editors: ``/api/preview`` (the
preview's report: subject, sizes, checks).  Admins: lists, subscribers, a rule's
live count, editions with their counts, and the schema itself.  They use the admin
session cookie; the one POST also needs the session's CSRF token in ``X-CSRF-Token``.
Errors are ``{"error": "..."}`` with a 4xx status.

No route declares a body for the framework to parse: a POST checks the sign-in and
the CSRF token first, then reads at most :data:`~digest.web.pages.MAX_JSON_BYTES`
itself (:func:`~digest.web.pages.read_json`), so an anonymous upload costs nothing.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field, ValidationError, WithJsonSchema
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from digest.models import Edition
from digest.stats import edition_stats
from digest.web import segment_builder
from digest.web.editor import check_day, get_preview, parse_day, pick_newsletter
from digest.web.pages import (
    MAX_JSON_BYTES,
    WebError,
    check_api_csrf,
    in_session,
    read_json,
    require_admin,
    require_editor,
    state,
)
from digest.web.preview import ALL
from subscribers import lists as subscribers_lists
from subscribers.db import MAX_ID
from subscribers.models import Status

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": None, "description": text}
    for code, text in {
        400: "Bad input",
        401: "Sign in first",
        403: "Missing or wrong CSRF token, or a role that does not open this (editors)",
        404: "Not found (or the admin console is off)",
    }.items()
}

#: What a POST with a JSON body may answer besides those.
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": None, "description": text}
    for code, text in {
        413: f"The body is larger than {MAX_JSON_BYTES // 1024} KB",
        415: "The body is not sent as application/json",
    }.items()
}

router = APIRouter(prefix="/api", tags=["api"])


class ErrorOut(BaseModel):
    error: str


for _errors in (ERRORS, BODY_ERRORS):
    for _code in _errors:
        _errors[_code]["model"] = ErrorOut


class Health(BaseModel):
    status: str


class NewsletterOut(BaseModel):
    name: str
    title: str
    description: str
    list_name: str = Field(alias="list")
    categories: list[str]
    archive: bool
    subscribe_url: str
    archive_url: str | None


class FindingOut(BaseModel):
    level: str
    message: str


class VariantOut(BaseModel):
    key: str
    label: str
    sections: list[str]
    readers: int | None


class PreviewOut(BaseModel):
    newsletter: str
    period: str
    as_of: date
    first_day: date
    last_day: date
    edition_id: int | None
    edition_status: str | None
    variant: str
    sections: list[str]
    variants: list[VariantOut]
    subject: str
    preheader: str
    articles: int
    html_bytes: int
    text_bytes: int
    gmail_clip_bytes: int
    findings: list[FindingOut]


class ListOut(BaseModel):
    name: str
    description: str
    double_opt_in: bool
    members: dict[str, int]
    total: int


class SubscriberOut(BaseModel):
    id: int
    email: str | None
    name: str
    status: str
    categories: list[str]
    created_at: datetime


class SubscriberPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[SubscriberOut]


def _condition_schemas() -> list[dict[str, Any]]:
    """The segment rule's conditions (see subscribers.segments), as JSON Schema."""
    name = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_ .-]{0,30}$"}
    value = {"anyOf": [{"type": "string", "maxLength": 40}, {"type": "integer"}]}

    def closed(**properties: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }

    day = {"type": "string", "format": "date"}
    return [
        closed(attr=name, equals=value),
        closed(
            attr=name, **{"in": {"type": "array", "items": value, "minItems": 1, "maxItems": 5}}
        ),
        closed(attr=name, contains={"type": "string", "minLength": 1, "maxLength": 40}),
        closed(attr=name, exists={"type": "boolean"}),
        closed(category={"type": "string", "minLength": 1, "maxLength": 40}),
        closed(status={"enum": [s.value for s in Status]}),
        {
            "type": "object",
            "properties": {
                "signed_up": {
                    "type": "object",
                    "properties": {"after": day, "before": day},
                    "additionalProperties": False,
                    "minProperties": 1,
                }
            },
            "required": ["signed_up"],
            "additionalProperties": False,
        },
    ]


def _rule_schema() -> dict[str, Any]:
    """Conditions, and all/any/not over them (rules may nest deeper; the schema shows two
    levels so that generated examples stay readable)."""
    conditions = _condition_schemas()
    leaf = {"anyOf": conditions}
    group = {"type": "array", "items": leaf, "minItems": 1, "maxItems": 4}
    return {
        "description": "A segment rule: a condition, or all/any/not of rules.",
        "anyOf": [
            *conditions,
            {
                "type": "object",
                "properties": {"all": group},
                "required": ["all"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"any": group},
                "required": ["any"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"not": leaf},
                "required": ["not"],
                "additionalProperties": False,
            },
        ],
    }


class RuleCountIn(BaseModel):
    list_name: str = Field(alias="list", min_length=1, max_length=100)
    rule: Annotated[dict[str, Any], WithJsonSchema(_rule_schema())]


class RuleCountOut(BaseModel):
    recipients: int
    members: int


class EditionOut(BaseModel):
    id: int
    newsletter: str
    period: str
    status: str
    subject: str
    created_at: datetime
    deliveries: dict[str, int]
    readers: dict[str, int]
    events: dict[str, int]
    #: Clicks through tracked links and pixel opens: {"click"|"open": {readers, hits}}.
    tracked: dict[str, dict[str, int]] = {}


@router.get("/health", response_model=Health)
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/newsletters", response_model=list[NewsletterOut])
def newsletters(request: Request) -> list[dict[str, Any]]:
    web = state(request)
    base = web.base_url
    return [
        {
            "name": nl.name,
            "title": nl.title,
            "description": nl.description,
            "list": nl.list_name,
            "categories": nl.category_names,
            "archive": nl.archive,
            "subscribe_url": f"{base}/subscribe/{nl.name}",
            "archive_url": f"{base}/archive/{nl.name}" if nl.archive else None,
        }
        for nl in web.digest_config().newsletters.values()
    ]


@router.get("/preview", response_model=PreviewOut, responses=ERRORS)
async def preview(
    request: Request,
    newsletter: Annotated[str | None, Query(max_length=100)] = None,
    as_of: date | None = None,
    variant: Annotated[str, Query(max_length=100)] = ALL,
) -> dict[str, Any]:
    require_editor(request)
    nl = pick_newsletter(request, newsletter)
    day = check_day(as_of) if as_of else parse_day(None, nl)
    return (await get_preview(request, nl, day, variant)).to_dict()


@router.get("/lists", response_model=list[ListOut], responses=ERRORS)
async def lists(request: Request) -> list[dict[str, Any]]:
    require_admin(request)
    summaries = await in_session(request, subscribers_lists.all_lists)
    return [
        {
            "name": s.mailing_list.name,
            "description": s.mailing_list.description,
            "double_opt_in": s.mailing_list.double_opt_in,
            "members": {k.value: v for k, v in s.counts.items()},
            "total": s.total,
        }
        for s in summaries
    ]


@router.get("/subscribers", response_model=SubscriberPage, responses=ERRORS)
async def subscribers(
    request: Request,
    list_name: Annotated[str | None, Query(alias="list", max_length=100)] = None,
    segment: Annotated[str | None, Query(max_length=100)] = None,
    status: Status | None = None,
    q: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    require_admin(request)
    if segment and not list_name:
        raise WebError("a segment belongs to a list: pass list as well")
    query = q.strip()

    digest = state(request).digest
    page = await run_in_threadpool(
        lambda: digest.subscribers(
            list_name, segment=segment, status=status, query=query, limit=limit, offset=offset
        )
    )
    items = [
        {
            "id": row.id,
            "email": row.email,
            "name": row.name,
            # as the admin pages show it: on a list, the membership's status
            "status": row.status,
            "categories": row.categories,
            "created_at": row.created_at,
        }
        for row in page.rows
    ]
    return {"total": page.total, "limit": limit, "offset": offset, "items": items}


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI description of a JSON body the route reads itself (see module doc)."""
    schema = model.model_json_schema(by_alias=True)
    assert "$defs" not in schema, "inline models only: the schema is not in components"
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    }


@router.post(
    "/segments/count",
    response_model=RuleCountOut,
    responses={**ERRORS, **BODY_ERRORS},
    openapi_extra=_json_body(RuleCountIn),
)
async def segment_count(request: Request) -> dict[str, int]:
    """How many of a list's recipients (and members) a rule matches, before saving it."""
    require_admin(request)
    check_api_csrf(request)
    body = _valid(RuleCountIn, await read_json(request))
    digest = state(request).digest
    found = await run_in_threadpool(digest.count_rule, body.list_name, body.rule)
    return found.to_dict()


@router.post("/segments/build", include_in_schema=False)
async def segment_build(request: Request) -> dict[str, Any]:
    """The segment builder's rows (``{"list", "match", "conditions"}``) as rule data,
    with its counts: what the admin's segment page shows as the rows change."""
    require_admin(request)
    check_api_csrf(request)
    data = await read_json(request)
    if not isinstance(data, dict):
        raise WebError("send a JSON object with list, match and conditions")
    list_name = data.get("list")
    if not isinstance(list_name, str) or not list_name.strip():
        raise WebError("list: name the list to count on")
    match, rows = segment_builder.rows_from_json(data)
    rule = segment_builder.build_rule(match, rows)
    found = await run_in_threadpool(state(request).digest.count_rule, list_name.strip(), rule)
    return {"rule": rule, **found.to_dict()}


def _valid(model: type[RuleCountIn], data: Any) -> RuleCountIn:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors(include_url=False)[:5]
        )
        raise WebError(f"the body does not fit the schema: {problems}") from None


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> JSONResponse:
    """The schema of these endpoints, for signed-in admins only."""
    require_admin(request)
    return JSONResponse(request.app.openapi())


@router.get("/editions", response_model=list[EditionOut], responses=ERRORS)
async def editions(
    request: Request,
    newsletter: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[dict[str, Any]]:
    require_editor(request)
    found = await run_in_threadpool(state(request).digest.editions, newsletter, limit=limit)
    return [e.to_dict() for e in found]


@router.get("/editions/{edition_id}", response_model=EditionOut, responses=ERRORS)
async def edition(
    request: Request, edition_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> dict[str, Any]:
    require_editor(request)

    def work(session: Session) -> dict[str, Any] | None:
        found = session.get(Edition, edition_id)
        return edition_stats(session, [found])[0].to_dict() if found else None

    result = await in_session(request, work)
    if result is None:
        raise WebError(f"no edition with id {edition_id}", status=404)
    return result


__all__ = ["router"]
