"""One exception handler turns every error into the answer the client asked for, and logs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from imagehost import errors
from imagehost.database import is_database_outage
from imagehost.embeds.framing import is_embed_path
from imagehost.errors import N_, ImageHostError
from imagehost.images.service import human_size
from imagehost.logging import action_log
from imagehost.web.responses import VARY, representation

STATUS_CODES: dict[type[ImageHostError], int] = {
    errors.NoFileGiven: 400,
    errors.EmptyFile: 400,
    errors.UndecodableImage: 400,
    errors.UnsupportedFormat: 415,
    errors.TooManyPixels: 413,
    errors.FileTooLarge: 413,
    errors.RequestTooLarge: 413,
    errors.DeleteForbidden: 403,
    errors.CrossSiteRequestRefused: 403,
    errors.ImageNotFound: 404,
    errors.StoredNameRefused: 404,
    errors.PageNotFound: 404,
    errors.StorageUnavailable: 503,
    errors.StorageFull: 507,
    errors.UploadTooSlow: 408,
    errors.DatabaseUnavailable: 503,
    errors.ImageProcessingFailed: 422,
    errors.ServiceStopping: 503,
    errors.ExportsBusy: 503,
    errors.InvalidParameter: 422,
    errors.BadQueryParameter: 400,
    errors.Unauthorized: 401,
    errors.SignInRequired: 401,
    errors.TokenRefused: 401,
    errors.TokenNotFound: 404,
    errors.ActionForbidden: 403,
    errors.NoRoleAssigned: 403,
    errors.SignInFailed: 400,
    errors.SignInUnavailable: 404,
    errors.TokenExpired: 401,
    errors.TokenSuspended: 401,
    errors.PersonNotFound: 404,
    errors.InvalidName: 400,
    errors.AlbumNotFound: 404,
    errors.ArticleNotFound: 404,
    errors.JobNotFound: 404,
    errors.ArchiveTooLargeForPage: 413,
    errors.JobInterrupted: 503,
    errors.JobsUnavailable: 503,
    errors.AlbumExists: 409,
    errors.AlbumForbidden: 403,
    errors.AlbumChangeForbidden: 403,
    errors.AlbumNameTaken: 409,
    errors.ArticleCodeTaken: 409,
    errors.ImageNotInAlbum: 404,
    errors.SameFileInArticle: 409,
    errors.OrderMismatch: 422,
    errors.NoArchiveGiven: 400,
    errors.ArchiveUnreadable: 400,
    errors.ArchiveEmpty: 422,
    errors.ArchiveTooManyEntries: 413,
    errors.ArchiveTooLarge: 413,
    errors.ArchiveOverlapping: 422,
    # Entry-level: reported in an archive's results, never a whole answer.
    errors.EntryRefused: 422,
    errors.EntryEncrypted: 422,
    errors.EntryIsLink: 422,
    errors.EntryIsArchive: 422,
    errors.EntryDamaged: 422,
    errors.EntryTooCompressed: 422,
    errors.EntryTooDeep: 422,
    errors.EntryNameTooLong: 422,
    errors.MissingParameter: 400,
    errors.NulInQuery: 400,
    errors.NothingToEmbed: 404,
    errors.OEmbedFormatUnsupported: 501,
}
# Where htmx puts an error fragment: every page has one element with this id.
ERROR_TARGET = "#messages"
UNEXPECTED = N_("Something went wrong on our side. Please try again in a moment.")
TOO_MANY_REQUESTS = N_("Too many requests from your address: please wait {seconds} seconds and try again.")
GENERIC_CLIENT_ERROR = N_("The request could not be understood.")


def error_response(request: Request, status_code: int, message: str) -> Response:
    kind = representation(request)
    headers = {"Vary": VARY}
    if kind == "json":
        return Response({"status": "error", "error": message}, status_code=status_code, headers=headers)
    context = {"message": message, "status_code": status_code}
    if is_embed_path(request.url.path):  # in another site's frame or page: no site around it, no #messages
        template = "embeds/_error.html" if kind == "fragment" else "embeds/error.html"
        return Template(template, context=context, status_code=status_code, headers=headers)
    if kind == "fragment":
        headers |= {"HX-Retarget": ERROR_TARGET, "HX-Reswap": "innerHTML"}
        return Template("_error.html", context=context, status_code=status_code, headers=headers)
    return Template("error.html", context=context, status_code=status_code, headers=headers)


def _translate(request: Request, error: ImageHostError) -> str:
    translator = request.app.state.translator
    translator.use(translator.negotiate(request))
    return translator.gettext(error.template).format(**error.params)


def sign_in_redirect(request: Request) -> Response | None:
    """A person (page or htmx) who must sign in is sent to /login and back; API clients get a 401."""
    kind = representation(request)
    # An embed answers 401 in place: the sign-in pages refuse to be framed by other sites.
    if kind == "json" or request.app.state.oidc is None or is_embed_path(request.url.path):
        return None
    back = request.headers.get("hx-current-url") if kind == "fragment" else None
    # The raw path: Litestar's own drops a trailing slash (/images/ would come back as /images).
    raw_path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
    path = raw_path.split("?")[0] + (f"?{request.url.query}" if request.url.query else "")
    if back:
        parts = back.split("/", 3)
        path = "/" + parts[3] if len(parts) > 3 else "/"
    target = f"/login?next={quote(path, safe='')}"
    if kind == "fragment":
        return Response("", status_code=200, headers={"HX-Redirect": target, "Vary": VARY})
    return Redirect(target, status_code=303)


def status_of(error: ImageHostError) -> int:
    """Its own entry, else its nearest mapped base class's; an error nobody mapped is our bug (500),
    never a silent 400 (a test checks that every subclass has an entry)."""
    for cls in type(error).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return HTTP_500_INTERNAL_SERVER_ERROR


@dataclass(frozen=True)
class Refusal:
    """One file's refusal inside an answer about several (POST /upload with several `file` parts)."""

    status_code: int
    message: str
    filename: str

    def json(self) -> dict[str, Any]:
        return {"status": "error", "error": self.message, "filename": self.filename}


def refusal_of(request: Request, error: ImageHostError, filename: str) -> Refusal:
    """What the handler would have answered for this error alone, logged the same way."""
    _log_domain_error(error, status_of(error))
    return Refusal(status_of(error), _translate(request, error), filename)


def _log_domain_error(error: ImageHostError, status_code: int) -> None:
    if status_code != 404 or isinstance(error, errors.ImageNotFound):
        action_log().error(error.log_line(), action=error.log_action)


def handle_domain_error(request: Request, error: ImageHostError) -> Response:
    status_code = status_of(error)
    if isinstance(error, errors.SignInRequired):
        action_log().info(error.log_line(), action="Refused")
        redirect = sign_in_redirect(request)
        if redirect is not None:
            return redirect
    _log_domain_error(error, status_code)
    response = error_response(request, status_code, _translate(request, error))
    if status_code == 401 and not isinstance(error, errors.SignInRequired):
        response.headers["WWW-Authenticate"] = 'Bearer realm="ImageHost API"'
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def handle_http_error(request: Request, error: HTTPException) -> Response:
    """Litestar's own refusals (unknown route, body over the limit, bad form) in our words."""
    if isinstance(error, NotFoundException):
        return handle_domain_error(request, errors.PageNotFound(path=request.url.path))
    if error.status_code == 413 or "Request Entity Too Large" in str(error.detail):
        settings = request.app.state.settings
        # /api/upload (ZIP archives) has its own, larger limit.
        largest = settings.zip_max_bytes if request.url.path == "/api/upload" else settings.max_upload_bytes
        limit = human_size(largest)
        return handle_domain_error(request, errors.RequestTooLarge(limit=limit))
    translator = request.app.state.translator
    translator.use(translator.negotiate(request))
    if error.status_code == 429:
        return too_many_requests(request, error)
    action_log().error(f"{request.method} {request.url.path} refused: {error.detail}.", action="Error")
    message = translator.gettext(GENERIC_CLIENT_ERROR) if error.status_code < 500 else translator.gettext(UNEXPECTED)
    return error_response(request, error.status_code, message)


def too_many_requests(request: Request, error: HTTPException) -> Response:
    headers = dict(error.headers or {})
    retry_after = headers.get("RateLimit-Reset", "60")
    action_log().info(
        f"{request.method} {request.url.path} from {request.client.host if request.client else '?'} refused:"
        f" rate limit, retry in {retry_after} s.",
        action="Refused",
    )
    message = request.app.state.translator.gettext(TOO_MANY_REQUESTS).format(seconds=retry_after)
    response = error_response(request, 429, message)
    response.headers.update({**headers, "Retry-After": str(retry_after)})
    return response


def handle_unexpected(request: Request, error: Exception) -> Response:
    if is_database_outage(error):
        reason = f"{type(error).__name__}: {error}"
        database = getattr(request.app.state, "database", None)
        if database is not None:
            database.lost(reason)  # logs the loss once and makes the watcher look at once
        return handle_domain_error(request, errors.DatabaseUnavailable(reason=reason))
    action_log().error(
        f"unexpected error on {request.method} {request.url.path}: {type(error).__name__}: {error}", action="Error"
    )
    translator = request.app.state.translator
    translator.use(translator.negotiate(request))
    return error_response(request, HTTP_500_INTERNAL_SERVER_ERROR, translator.gettext(UNEXPECTED))


EXCEPTION_HANDLERS = {
    ImageHostError: handle_domain_error,
    HTTPException: handle_http_error,
    Exception: handle_unexpected,
}
