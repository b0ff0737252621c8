"""HTTP: `POST /api/sync` (the report as JSON) and the operator page `GET/POST /ops/check`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.openapi.spec import Schema
from litestar.openapi.spec.enums import OpenAPIType

from imagehost.accounts.identity import principal_of_request
from imagehost.api.openapi import answers, form, form_body, text
from imagehost.errors import InvalidParameter
from imagehost.images.service import ImageService
from imagehost.ops.consistency.check import ConsistencyCheck
from imagehost.ops.consistency.repair import MISSING_ROW_CHOICES
from imagehost.ops.consistency.report import ACTIONS, FIELDS, KINDS, PROBLEMS, CheckReport, load_last_report
from imagehost.ops.consistency.scan import RECENT_SECONDS
from imagehost.web.responses import respond


@dataclass
class CheckedCounts:
    rows: int
    files: int
    thumbnails: int
    bytes_hashed: int
    skipped_recent: int


@dataclass
class ReportAnswer:
    """A check's report (CheckReport.as_json); `findings` lists the first 1,000."""

    consistent: bool
    started_at: str
    duration_seconds: float
    repair: str | None
    by: str
    checked: CheckedCounts
    problems: int
    fixed: int
    unfixed: int
    counts: dict[str, int]
    fixed_counts: dict[str, int]
    quarantine: str | None
    findings: list[dict[str, Any]]
    findings_listed_all: bool
    summary: str


@dataclass
class SyncAnswer(ReportAnswer):
    status: Literal["success"] = "success"


@dataclass
class LastReportAnswer:
    status: Literal["success"]
    report: ReportAnswer | None


_MISSING_ROWS = text("With repair: what becomes of rows whose file is gone", *MISSING_ROW_CHOICES)
_SYNC_BODY = form_body(
    media_types=("application/json",),
    repair=Schema(type=OpenAPIType.BOOLEAN, description="Repair what can be repaired"),
    missing_rows=_MISSING_ROWS,
)


def _missing_rows_choice(raw: Any) -> str:
    if raw is None or raw == "":
        return "mark"
    if raw not in MISSING_ROW_CHOICES:
        raise InvalidParameter(field="missing_rows", reason="must be mark or remove")
    return str(raw)


def _check_for(images: ImageService) -> ConsistencyCheck:
    return ConsistencyCheck(images.settings, images.store, images.workers)


def _page_context(report: CheckReport | None) -> dict[str, Any]:
    return {
        "report": report,
        "kinds": KINDS,
        "problems": PROBLEMS,
        "actions": ACTIONS,
        "fields": FIELDS,
        "recent_seconds": RECENT_SECONDS,
    }


def _report_json(report: CheckReport | None) -> dict[str, Any]:
    return {"status": "success", "report": report.as_json() if report else None}


@post(
    "/api/sync",
    status_code=200,
    operation_class=_SYNC_BODY,
    responses=answers(200, SyncAnswer, "The check's report", 401, 403, 422, 503),
)
async def sync(request: Request, images: ImageService) -> Response:
    """The JSON report; `{"repair": true, "missing_rows": "mark"|"remove"}` asks for repair.
    Admins only (a session or an admin's personal token)."""
    principal = principal_of_request(request)
    images.policy.require_admin(principal)
    body = await request.body()
    try:
        options = json.loads(body) if body.strip() else {}
    except ValueError:
        raise InvalidParameter(field="body", reason="must be a JSON object") from None
    if not isinstance(options, dict):
        raise InvalidParameter(field="body", reason="must be a JSON object")
    repair = options.get("repair", False)
    if not isinstance(repair, bool):
        raise InvalidParameter(field="repair", reason="must be true or false")
    missing_rows = _missing_rows_choice(options.get("missing_rows"))
    report = await _check_for(images).run(missing_rows if repair else None, by=principal.name)
    return Response({"status": "success", **report.as_json()})


def _answer(request: Request, report: Any) -> Response:
    """The operator page, its report fragment, or the report as JSON."""
    return respond(
        request,
        page="ops/check.html",
        fragment="ops/_report.html",
        context=_page_context(report),
        json=lambda: _report_json(report),
    )


class ConsistencyController(Controller):
    path = "/ops/check"

    @get(responses=answers(200, LastReportAnswer, "The last check's report, if any", 401, 403, 503))
    async def check_page(self, request: Request, images: ImageService) -> Response:
        images.policy.require_admin(principal_of_request(request))
        report = await anyio.to_thread.run_sync(load_last_report, images.settings)
        return _answer(request, report)

    @post(
        status_code=200,
        operation_class=form(repair=text("Any value: repair too"), missing_rows=_MISSING_ROWS),
        responses=answers(200, LastReportAnswer, "The new report", 401, 403, 422, 503),
    )
    async def run_from_page(self, request: Request, images: ImageService) -> Response:
        """The page's buttons: run the check, or check and repair (htmx swaps in the report)."""
        principal = principal_of_request(request)
        images.policy.require_admin(principal)
        form = await request.form()
        repair = _missing_rows_choice(form.get("missing_rows")) if form.get("repair") else None
        report = await _check_for(images).run(repair, by=principal.name)
        return _answer(request, report)


ROUTES = [sync, ConsistencyController]
