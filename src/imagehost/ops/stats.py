"""Statistics for the operator: what is stored, by whom, how fast it grows, and what it costs."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import anyio.to_thread
from litestar import Request, Response, get

from imagehost import __version__
from imagehost.accounts.identity import principal_of_request
from imagehost.api.openapi import answers
from imagehost.images.service import ImageService
from imagehost.images.tables import Image
from imagehost.ops import state
from imagehost.web.responses import respond

CHART_DAYS = 30
TOP_UPLOADERS = 20


@dataclass
class Statistics:
    images: int
    total_bytes: int
    by_format: list[dict[str, Any]]
    by_uploader: list[dict[str, Any]]
    per_day: list[dict[str, Any]]  # the last CHART_DAYS days, oldest first, zeros included
    disk: dict[str, int]
    database_bytes: int
    database_version: str
    app_version: str
    last_backup: str | None
    last_check: str | None
    # The last outcome of each operation (backup, check, restore), from the operations_state table.
    operations: dict[str, Any] = field(default_factory=dict)
    chart: dict[str, Any] = field(default_factory=dict)


def chart_geometry(per_day: list[dict[str, Any]], width: int = 600, height: int = 120) -> dict[str, Any]:
    """Bars for the SVG in the template: computed here, drawn by the browser, no JavaScript."""
    most = max((day["count"] for day in per_day), default=0) or 1
    step = width / max(len(per_day), 1)
    bars = []
    for index, day in enumerate(per_day):
        bar_height = round(day["count"] / most * (height - 20), 1)
        bars.append(
            {
                "x": round(index * step + 1, 1),
                "y": round(height - bar_height, 1),
                "width": round(step - 2, 1),
                "height": bar_height,
                "label": f"{day['day']}: {day['count']}",
            }
        )
    return {"width": width, "height": height, "bars": bars, "most": most}


@dataclass
class Totals:
    """What a /metrics scrape reads too: the trigger-kept totals, the database, the disk, the last
    operations. Cheap: no uploader table, no chart."""

    images: int
    by_format: list[dict[str, Any]]
    disk: dict[str, int]
    database_bytes: int
    database_version: str
    outcomes: dict[str, state.Outcome]

    @property
    def total_bytes(self) -> int:
        return sum(row["bytes"] for row in self.by_format)


async def totals(images: ImageService) -> Totals:
    total = await images.count()
    # Small tables kept by triggers (migration images_0008): no scan of the images themselves.
    by_format = await Image.raw(
        "SELECT file_format AS format, images AS count, bytes FROM image_format_totals"
        " WHERE images > 0 ORDER BY images DESC"
    )
    database = (await Image.raw("SELECT pg_database_size(current_database()) AS size, version() AS version"))[0]
    usage = await anyio.to_thread.run_sync(shutil.disk_usage, images.settings.images_dir)
    # Kept as data by the operations themselves: never read back from app.log, where any logged
    # text (an uploaded file's name) could pose as a backup's line.
    outcomes = await state.last_outcomes()
    return Totals(
        images=total,
        by_format=[{**row, "bytes": int(row["bytes"])} for row in by_format],
        disk={"total": usage.total, "used": usage.used, "free": usage.free},
        database_bytes=int(database["size"]),
        database_version=str(database["version"]).split(" on ")[0],
        outcomes=outcomes,
    )


async def collect(images: ImageService) -> Statistics:
    """The statistics page: the totals, the top uploaders and the last CHART_DAYS days."""
    known = await totals(images)
    by_uploader = await Image.raw(
        "SELECT coalesce(uploader_name, '') AS name, nullif(uploader_sub, '') AS sub, images AS count, bytes"
        " FROM image_uploader_totals WHERE images > 0 ORDER BY images DESC LIMIT {}",
        TOP_UPLOADERS,
    )
    today = datetime.now(UTC).date()
    since = today - timedelta(days=CHART_DAYS - 1)
    days = await Image.raw("SELECT day, images AS count FROM image_daily_totals WHERE day >= {}", since)
    counted = {row["day"]: row["count"] for row in days}
    per_day = [
        {"day": (since + timedelta(days=offset)).isoformat(), "count": counted.get(since + timedelta(days=offset), 0)}
        for offset in range(CHART_DAYS)
    ]
    outcomes = known.outcomes
    return Statistics(
        images=known.images,
        total_bytes=known.total_bytes,
        by_format=known.by_format,
        by_uploader=[{**row, "bytes": int(row["bytes"])} for row in by_uploader],
        per_day=per_day,
        disk=known.disk,
        database_bytes=known.database_bytes,
        database_version=known.database_version,
        app_version=__version__,
        last_backup=outcomes[state.BACKUP].line() if state.BACKUP in outcomes else None,
        last_check=outcomes[state.CHECK].line() if state.CHECK in outcomes else None,
        operations={kind: outcome.as_json() for kind, outcome in outcomes.items()},
        chart=chart_geometry(per_day),
    )


def _as_json(statistics: Statistics) -> dict[str, Any]:
    body = {key: value for key, value in statistics.__dict__.items() if key != "chart"}
    return {"status": "success", **body}


@dataclass
class OperationAnswer:
    at: str
    outcome: str  # ok, warnings, problems, failed
    detail: str


@dataclass
class StatisticsAnswer:
    status: Literal["success"]
    images: int
    total_bytes: int
    by_format: list[dict[str, Any]]  # format, count, bytes
    by_uploader: list[dict[str, Any]]  # name, sub, count, bytes
    per_day: list[dict[str, Any]]  # day, count: the last 30 days, oldest first
    disk: dict[str, int]  # total, used, free
    database_bytes: int
    database_version: str
    app_version: str
    last_backup: str | None
    last_check: str | None
    operations: dict[str, OperationAnswer]  # backup, check, restore: the last of each


@get("/ops/stats", responses=answers(200, StatisticsAnswer, "The statistics", 401, 403, 503))
async def statistics_page(request: Request, images: ImageService) -> Response:
    images.policy.require_admin(principal_of_request(request))
    statistics = await collect(images)
    return respond(
        request,
        page="ops/stats.html",
        fragment="ops/stats.html",
        context={"stats": statistics, "today": date.today()},
        json=lambda: _as_json(statistics),
    )


ROUTES: list = [statistics_page]
