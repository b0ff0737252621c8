"""GET /ops/logs: the action log for admins (page, htmx fragment, JSON), with its filters."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Annotated
from urllib.parse import urlencode

import anyio.to_thread
from litestar import Request, Response, get
from litestar.params import Parameter

from imagehost.accounts.identity import principal_of_request
from imagehost.api.openapi import answers
from imagehost.errors import InvalidParameter
from imagehost.images.service import ImageService
from imagehost.logging import ACTIONS
from imagehost.ops.logs.reader import LogFilter, read_page
from imagehost.web.query import page_number
from imagehost.web.responses import respond

# The actions the log writes, offered in the form; the filter takes any word.
KNOWN_ACTIONS = ACTIONS


@dataclass
class LogEntryAnswer:
    time: str
    action: str
    message: str


@dataclass
class LogPageAnswer:
    status: str
    page: int
    has_next: bool
    entries: list[LogEntryAnswer]


def _day(name: str, raw: str | None) -> date | None:
    if not (raw or "").strip():
        return None
    try:
        return date.fromisoformat((raw or "").strip()[:10])
    except ValueError:
        raise InvalidParameter(field=name, reason="a date as YYYY-MM-DD") from None


def _word(raw: str | None, longest: int = 200) -> str | None:
    text = (raw or "").strip()
    return text[:longest] or None


@get(
    "/ops/logs",
    responses=answers(200, LogPageAnswer, "One page of the action log, newest first", 400, 401, 403, 422, 503),
)
async def log_page(
    request: Request,
    images: ImageService,
    action: str | None = None,
    who: str | None = None,
    q: str | None = None,
    from_: Annotated[str | None, Parameter(query="from")] = None,
    to: str | None = None,
    page: str | None = None,
) -> Response:
    """`action` (Success, Error, Backup, ...), `who`, `q` (text), `from` and `to` (dates, inclusive), `page`."""
    images.policy.require_admin(principal_of_request(request))
    wanted = LogFilter(
        action=_word(action, 40), who=_word(who), text=_word(q), since=_day("from", from_), until=_day("to", to)
    )
    number = page_number(page)
    settings = images.settings
    found = await anyio.to_thread.run_sync(
        lambda: read_page(settings.log_dir, wanted, number, name=settings.log_file_name)
    )
    values = {"action": wanted.action, "who": wanted.who, "q": wanted.text, "from": from_, "to": to}
    query = urlencode({key: value for key, value in values.items() if value})
    return respond(
        request,
        page="ops/logs.html",
        fragment="ops/_log_entries.html",
        context={
            "log": found,
            "values": values,
            "query": query,
            "actions": KNOWN_ACTIONS,
            "log_file": settings.log_file_name,
        },
        json=lambda: {
            "status": "success",
            "log_file": settings.log_file_name,
            "page": found.page,
            "has_next": found.has_next,
            "entries": [asdict(entry) for entry in found.entries],
        },
    )


ROUTES: list = [log_page]
