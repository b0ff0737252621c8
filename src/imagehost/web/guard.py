"""Runs before every handler: pick the request's language, refuse cross-site unsafe requests.

Cross-site request forgery is refused from the browser's own Fetch Metadata (Sec-Fetch-Site) and,
for older browsers, the Origin header. Requests that carry neither (curl, scripts) carry no
ambient credentials either, so they pass: that keeps `curl -F file=@x.png` working without tokens.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from litestar import Request

from imagehost.accounts.identity import resolve_principal
from imagehost.errors import CrossSiteRequestRefused

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def is_cross_site(request: Request) -> bool:
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in {"same-origin", "none"}
    origin = request.headers.get("origin")
    if not origin:
        return False
    host = request.headers.get("host", "")
    public = request.app.state.settings.public_base_url
    allowed = {host} | ({urlsplit(public).netloc} if public else set())
    return origin == "null" or urlsplit(origin).netloc not in allowed


async def before_request(request: Request) -> None:
    translator = request.app.state.translator
    translator.use(translator.negotiate(request))
    await resolve_principal(request)
    if request.method not in SAFE_METHODS and is_cross_site(request):
        raise CrossSiteRequestRefused(
            method=request.method,
            path=request.url.path,
            origin=request.headers.get("origin") or request.headers.get("sec-fetch-site"),
        )
