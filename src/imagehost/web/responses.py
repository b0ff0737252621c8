"""One place decides how an answer is shaped: an htmx fragment, a whole HTML page, or JSON."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Request, Response
from litestar.response import Template

Representation = Literal["fragment", "page", "json"]
VARY = "HX-Request, Accept"


def _quality(accept: str, media_types: tuple[str, ...]) -> float:
    best = 0.0
    for part in accept.split(","):
        pieces = part.strip().split(";")
        if pieces[0].strip().lower() not in media_types:
            continue
        quality = 1.0
        for parameter in pieces[1:]:
            name, _, value = parameter.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        best = max(best, quality)
    return best


def prefers_html(request: Request) -> bool:
    """Browsers name text/html explicitly; curl and scripts send */* or ask for JSON."""
    accept = request.headers.get("accept", "")
    html = _quality(accept, ("text/html", "application/xhtml+xml"))
    return html > 0 and html >= _quality(accept, ("application/json",))


def representation(request: Request) -> Representation:
    headers = request.headers
    if headers.get("hx-request") == "true":
        # A boosted link or a history restore (Back after paging) replaces the whole page, and
        # htmx sends them with Accept: */*, so they must not fall through to JSON.
        if headers.get("hx-boosted") == "true" or headers.get("hx-history-restore-request") == "true":
            return "page"
        return "fragment"
    return "page" if prefers_html(request) else "json"


def respond(
    request: Request,
    *,
    page: str,
    fragment: str,
    context: dict[str, Any],
    json: Any,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """`json` may be a zero-argument callable so that only the chosen representation is built."""
    headers = {"Vary": VARY, **(headers or {})}
    kind = representation(request)
    if kind == "json":
        body = json() if callable(json) else json
        return Response(body, status_code=status_code, headers=headers, media_type="application/json")
    return Template(
        template_name=fragment if kind == "fragment" else page,
        context=context,
        status_code=status_code,
        headers=headers,
    )
