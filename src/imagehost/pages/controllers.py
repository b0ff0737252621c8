from __future__ import annotations

from urllib.parse import urlsplit

from litestar import Request, Response, get
from litestar.datastructures import Cookie
from litestar.openapi import ResponseSpec
from litestar.response import Redirect, Template

from imagehost.api.openapi import HealthAnswer
from imagehost.images.service import ImageService
from imagehost.settings import SUPPORTED_LANGUAGES
from imagehost.web.i18n import LANGUAGE_COOKIE

ONE_YEAR = 365 * 24 * 3600


@get("/", include_in_schema=False)  # the home page: HTML only
async def home() -> Template:
    # The limit comes from the template globals, formatted ("5 MB") like every other page's.
    return Template("pages/home.html")


@get("/health", responses={200: ResponseSpec(HealthAnswer, description="The process runs")})
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/ready",
    responses={
        200: ResponseSpec(HealthAnswer, description="The database answers and the images folder is writable"),
        503: ResponseSpec(HealthAnswer, description="Not ready; `reason` says why"),
    },
)
async def ready(images: ImageService) -> Response:
    problem = await images.readiness_problem()
    if problem:
        return Response({"status": "unavailable", "reason": problem}, status_code=503)
    return Response({"status": "ready"})


@get("/language/{code:str}", include_in_schema=False)  # a browser route: a redirect, no JSON
async def choose_language(request: Request, code: str, next: str | None = None) -> Response:
    """Remember the language in a cookie and go back where the switch was clicked.

    The page's current address comes from Referer (it follows htmx's pushed URLs); `next` is the
    fallback for browsers that send no Referer. Only paths on this site are followed.
    """
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc == request.headers.get("host"):
        next = referer.path + (f"?{referer.query}" if referer.query else "")
    target = next if next and next.startswith("/") and not next.startswith("//") else "/"
    response = Redirect(target, status_code=303)
    if code in SUPPORTED_LANGUAGES:
        response.cookies.append(
            Cookie(key=LANGUAGE_COOKIE, value=code, max_age=ONE_YEAR, samesite="lax", httponly=False, path="/")
        )
    return response
