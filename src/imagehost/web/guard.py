"""Runs before every handler: pick the request's language, refuse cross-site unsafe requests.

Cross-site request forgery is refused from the browser's own Fetch Metadata (Sec-Fetch-Site) and,
for older browsers, the Origin header. Requests that carry neither (curl, scripts) carry no
ambient credentials either, so they pass: that keeps `curl -F file=@x.png` working without tokens.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from litestar import Request

from imagehost.accounts.identity import resolve_principal
from imagehost.errors import CrossSiteRequestRefused, NulInQuery

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or URL, the port filled in; None if it is not http(s)."""
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number, a malformed IPv6 host
        return None
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, host, port


def is_cross_site(request: Request) -> bool:
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in {"same-origin", "none"}
    origin = request.headers.get("origin")
    if not origin:
        return False
    # Same origin means same scheme, host and port: https://host is another site than http://host.
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    public = request.app.state.settings.public_base_url
    allowed = {origin_of(own)} | ({origin_of(public)} if public else set())
    offered = origin_of(origin)
    return offered is None or offered not in allowed


async def before_request(request: Request) -> None:
    translator = request.app.state.translator
    translator.use(translator.negotiate(request))
    # PostgreSQL text holds no NUL: a filter carrying one would fail in the driver (a 500), so it
    # is the client's mistake here, before any handler reads it.
    query = request.scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        raise NulInQuery()
    await resolve_principal(request)
    if request.method not in SAFE_METHODS and is_cross_site(request):
        raise CrossSiteRequestRefused(
            method=request.method,
            path=request.url.path,
            origin=request.headers.get("origin") or request.headers.get("sec-fetch-site"),
        )
