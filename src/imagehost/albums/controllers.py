"""HTTP for albums: PicHosting's JSON API (its routes and field names) and the ZIP upload. Thin:
parse the request, call AlbumService, shape the JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.openapi.spec.media_type import OpenAPIMediaType

from imagehost.accounts.identity import principal_of_request
from imagehost.albums.intake import ArchiveReport, EntryResult, JobReport, Note, StartedJob
from imagehost.albums.names import catalogue_name
from imagehost.albums.service import AlbumFile, AlbumService, MovedImages
from imagehost.api.openapi import DeleteAnswer, ErrorAnswer, answers, form_body
from imagehost.errors import N_, ImageHostError, InvalidParameter, MissingParameter
from imagehost.images.links import Links
from imagehost.images.service import ImageService
from imagehost.web.bodies import json_object

FILES_UPLOADED = N_("Files uploaded successfully")
NOTHING_NEW = N_("Nothing new was stored: every file was already there or skipped.")
ALL_REFUSED = N_("Nothing was stored: every file in the archive was refused.")
ALBUM_DELETED = N_("The album {name} was deleted with its {count} images.")
ARTICLE_DELETED = N_("The article {article} of the album {album} was deleted with its {count} images.")
JOB_ACCEPTED = N_("The archive is being unpacked: follow its progress at job_url.")
JOB_RUNNING = N_("{done} of {total} entries done so far.")
ALBUM_RENAMED = N_("The album {old} is now called {new}.")
ARTICLE_RENAMED = N_("The article {old} of the album {album} is now called {new}.")
IMAGES_MOVED = N_("Images moved to the article {article} of the album {album}: {count}.")
ARTICLE_REORDERED = N_("The photo order of the article {article} of the album {album} is saved ({count} images).")


# --- The shapes, for the OpenAPI description -------------------------------------------------------


@dataclass
class EntryAnswer:
    entry: str
    status: Literal["stored", "refused", "skipped"]
    album_name: str
    article_number: str | None
    id: int | None
    filename: str | None
    url: str | None
    delete_url: str | None
    error: str | None


@dataclass
class ArchiveAnswer:
    status: Literal["success", "error"]
    message: str
    album_name: str
    stored: int
    refused: int
    skipped: int
    results: list[EntryAnswer]


@dataclass
class JobAcceptedAnswer:
    status: Literal["accepted"]
    message: str
    job_id: str
    job_url: str


@dataclass
class JobAnswer(ArchiveAnswer):
    """`status` is "accepted" while the job runs, "error" when it failed (`error` says why)."""

    job_id: str = ""
    state: Literal["queued", "running", "done", "failed"] = "queued"
    archive_name: str = ""
    total: int = 0
    done: int = 0
    error: str | None = None


@dataclass
class AlbumFileAnswer:
    id: int
    filename: str
    original_name: str
    album_name: str
    article_number: str
    public_link: str
    created_at: str


@dataclass
class AlbumThumbnailAnswer(AlbumFileAnswer):
    thumbnail_url: str = ""
    preview_url: str = ""
    file_size: int = 0
    width: int | None = None
    height: int | None = None


@dataclass
class CountAnswer:
    count: int


@dataclass
class RenamedAlbumAnswer:
    status: Literal["success"]
    message: str
    album_name: str


@dataclass
class ArticleAnswer(RenamedAlbumAnswer):
    """A renamed or reordered article: its album and its code (as stored)."""

    article_number: str = ""


@dataclass
class RemovedArticle:
    album_name: str
    article_number: str


@dataclass
class MovedAnswer(ArticleAnswer):
    """`removed_articles`: the articles the move left empty, deleted."""

    moved: int = 0
    removed_articles: list[RemovedArticle] | None = None


def _json_body(**fields: Schema) -> type[Operation]:
    return form_body(required=tuple(fields), media_types=("application/json",), **fields)


_NEW_NAME = Schema(type=OpenAPIType.STRING, description="NFC, 1 to 200 characters, no / or control characters")
_IMAGE_IDS = Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.INTEGER), description="Image ids")
RenameBody = _json_body(new_name=_NEW_NAME)
MoveBody = _json_body(
    image_ids=_IMAGE_IDS,
    album_name=Schema(type=OpenAPIType.STRING, description="The target album (it must exist)"),
    article_name=Schema(type=OpenAPIType.STRING, description="The target article (created when missing)"),
)
ReorderBody = _json_body(
    image_ids=Schema(
        type=OpenAPIType.ARRAY,
        items=Schema(type=OpenAPIType.INTEGER),
        description="Every image of the article, each once, in the new order",
    )
)


def with_conflict(described: dict[int, ResponseSpec], description: str) -> dict[int, ResponseSpec]:
    return {**described, 409: ResponseSpec(data_container=ErrorAnswer, description=description)}


ANONYMOUS_CONFLICT = "The album exists and an anonymous upload may not add to it"


_ARCHIVE_FORM = RequestBody(
    required=True,
    content={
        "multipart/form-data": OpenAPIMediaType(
            schema=Schema(
                type=OpenAPIType.OBJECT,
                properties={
                    "zipfile": Schema(type=OpenAPIType.STRING, format="binary", description="The ZIP (or as `file`)"),  # type: ignore[arg-type]
                    "file": Schema(type=OpenAPIType.STRING, format="binary", description="The ZIP (or as `zipfile`)"),  # type: ignore[arg-type]
                    "album_name": Schema(type=OpenAPIType.STRING, description="The album, instead of the folder rule"),
                    "mode": Schema(type=OpenAPIType.STRING, enum=["merge", "replace"], description="Default merge"),
                },
            )
        )
    },
)


@dataclass
class ArchiveUploadOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = _ARCHIVE_FORM


# --- Helpers ---------------------------------------------------------------------------------------


def say(request: Request, template: str, **params: Any) -> str:
    """A sentence in the request's language."""
    translator = request.app.state.translator
    translator.use(translator.negotiate(request))
    return translator.gettext(template).format(**params)


def reason_text(request: Request, reason: ImageHostError | Note | None) -> str | None:
    if reason is None:
        return None
    return say(request, reason.template, **reason.params)


def text_field(values: dict[str, Any], name: str) -> str:
    value = values.get(name)
    if value is None:
        raise MissingParameter(name=name)
    if not isinstance(value, str):
        raise InvalidParameter(field=name, reason="a string")
    return value


def ids_field(values: dict[str, Any], name: str) -> list[int]:
    value = values.get(name)
    if value is None:
        raise MissingParameter(name=name)
    if not isinstance(value, list) or not all(type(item) is int for item in value):  # True is no id
        raise InvalidParameter(field=name, reason="a list of image ids (whole numbers)")
    return value


def moved_json(request: Request, moved: MovedImages) -> dict[str, Any]:
    message = say(request, IMAGES_MOVED, article=moved.article_number, album=moved.album_name, count=moved.moved)
    return {
        "status": "success",
        "message": message,
        "album_name": moved.album_name,
        "article_number": moved.article_number,
        "moved": moved.moved,
        "removed_articles": [{"album_name": album, "article_number": code} for album, code in moved.emptied],
    }


def entry_json(request: Request, result: EntryResult, links: Links) -> dict[str, Any]:
    image = result.image
    return {
        "entry": result.entry,
        "status": result.status,
        "album_name": result.album_name,
        "article_number": result.article_number,
        "id": image.id if image else None,
        "filename": image.stored_name if image else None,
        "url": links.image(image) if image else None,
        "delete_url": links.delete(image, result.delete_key) if image and result.delete_key else None,
        "error": reason_text(request, result.reason) if result.status != "stored" else None,
    }


def report_outcome(report: ArchiveReport) -> tuple[int, str, str]:
    """The status code, status and message of a finished archive's report."""
    if report.stored:
        return 201, "success", FILES_UPLOADED
    if report.skipped:
        return 200, "success", NOTHING_NEW
    return 422, "error", ALL_REFUSED


def report_json(request: Request, report: ArchiveReport, links: Links, status: str, message: str) -> dict[str, Any]:
    return {
        "status": status,
        "message": message,
        "album_name": report.album_name,
        "stored": report.stored,
        "refused": report.refused,
        "skipped": report.skipped,
        "results": [entry_json(request, result, links) for result in report.results],
        # A 422 (every entry refused) is also an error answer: clients that read `error` find the message.
        **({"error": message} if status == "error" else {}),
    }


def report_response(request: Request, report: ArchiveReport, links: Links) -> Response:
    status_code, status, message = report_outcome(report)
    return Response(report_json(request, report, links, status, say(request, message)), status_code=status_code)


def job_url(request: Request, job_id: str) -> str:
    return f"{Links(request, request.app.state.image_service).site}/api/jobs/{job_id}"


def submitted_response(request: Request, outcome: ArchiveReport | StartedJob, links: Links) -> Response:
    """The report when the job ended in time, else 202 with the job's URL."""
    if isinstance(outcome, ArchiveReport):
        return report_response(request, outcome, links)
    return Response(
        {
            "status": "accepted",
            "message": say(request, JOB_ACCEPTED),
            "job_id": outcome.job_id,
            "job_url": job_url(request, outcome.job_id),
        },
        status_code=202,
    )


def job_json(request: Request, job_id: str, found: JobReport, links: Links) -> dict[str, Any]:
    job, report = found.job, found.report
    error = None
    if job.state == "done":
        _code, status, template = report_outcome(report)
        message = say(request, template)
    elif job.state == "failed":
        status = "error"
        message = error = say(request, job.error_template or ImageHostError.template, **(job.error_params or {}))
    else:
        status, message = "accepted", say(request, JOB_RUNNING, done=found.done, total=job.total)
    return {
        **report_json(request, report, links, status, message),
        "job_id": job_id,
        "state": job.state,
        "archive_name": job.archive_name,
        "total": job.total,
        "done": found.done,
        "error": error,
    }


def file_json(found: AlbumFile, links: Links) -> dict[str, Any]:
    image = found.image
    return {
        "id": image.id,
        "filename": image.stored_name,
        "original_name": image.original_name,
        "album_name": found.album_name,
        "article_number": found.article_number,
        "public_link": links.image(image),
        "created_at": image.uploaded_at.isoformat(),
    }


def thumbnail_json(found: AlbumFile, links: Links) -> dict[str, Any]:
    image = found.image
    return {
        **file_json(found, links),
        "thumbnail_url": links.thumbnail(image, 160),
        "preview_url": links.preview(image, 480),
        "file_size": image.size_bytes,
        "width": image.width,
        "height": image.height,
    }


# --- Routes ----------------------------------------------------------------------------------------

ARCHIVE_ERRORS = (400, 401, 403, 408, 413, 422, 429, 503, 507)


class ArchiveUploadController(Controller):
    """POST /api/upload: its own body limit (ZIP_MAX_BYTES) and deadline, set where it is registered."""

    @post(
        "/api/upload",
        status_code=201,
        operation_class=ArchiveUploadOperation,
        responses=with_conflict(
            {
                **answers(201, ArchiveAnswer, "At least one entry stored", *ARCHIVE_ERRORS),
                200: ResponseSpec(data_container=ArchiveAnswer, description="Nothing new: duplicates or skipped"),
                202: ResponseSpec(
                    data_container=JobAcceptedAnswer,
                    description="Still unpacking after ZIP_WAIT_SECONDS: follow job_url (GET /api/jobs/<id>)",
                ),
            },
            ANONYMOUS_CONFLICT,
        ),
    )
    async def upload_archive(self, request: Request, albums: AlbumService, images: ImageService) -> Response:
        """A ZIP of folders: album, then article folders (or `SKU_1.jpg` names), images inside.
        Answers when every entry is done (201, 200, or 422 when every entry was refused), or 202
        with the job's URL when that takes longer than ZIP_WAIT_SECONDS."""
        form = await request.form()
        field = form.get("zipfile")
        if not isinstance(field, UploadFile):
            field = form.get("file")
        album_name = form.get("album_name")
        mode = form.get("mode")
        try:
            outcome = await albums.intake.submit_archive(
                field.file if isinstance(field, UploadFile) else None,
                field.filename if isinstance(field, UploadFile) else "",
                principal_of_request(request),
                album_name=album_name if isinstance(album_name, str) and album_name.strip() else None,
                mode=mode if isinstance(mode, str) else None,
            )
        finally:
            if isinstance(field, UploadFile):
                await field.close()
        return submitted_response(request, outcome, Links(request, images))


class AlbumController(Controller):
    """PicHosting's read and delete API, with its paths and field names."""

    path = "/api"

    @get("/albums", responses=answers(200, list[str], "Album names, sorted", 401, 403, 503))
    async def albums(self, request: Request, albums: AlbumService) -> list[str]:
        return await albums.album_names(principal_of_request(request))

    @get(
        "/articles/{album:str}",
        responses=answers(200, list[str], "The album's article codes, natural order", 400, 401, 403, 404, 503),
    )
    async def articles(self, request: Request, albums: AlbumService, album: str) -> list[str]:
        return await albums.article_codes(album, principal_of_request(request))

    @get(
        ["/files/{album:str}", "/files/{album:str}/{article:str}"],
        responses=answers(200, list[AlbumFileAnswer], "Images, newest first", 400, 401, 403, 404, 503),
    )
    async def files(
        self, request: Request, albums: AlbumService, images: ImageService, album: str, article: str | None = None
    ) -> Response:
        found = await albums.files(album, article, principal_of_request(request))
        links = Links(request, images)
        return Response([file_json(item, links) for item in found])

    @get(
        ["/thumbnails/{album:str}", "/thumbnails/{album:str}/{article:str}"],
        responses=answers(200, list[AlbumThumbnailAnswer], "Images with thumbnails", 400, 401, 403, 404, 503),
    )
    async def thumbnails(
        self, request: Request, albums: AlbumService, images: ImageService, album: str, article: str | None = None
    ) -> Response:
        found = await albums.files(album, article, principal_of_request(request))
        links = Links(request, images)
        return Response([thumbnail_json(item, links) for item in found])

    @get("/count/album/{album:str}", responses=answers(200, CountAnswer, "Images", 400, 401, 403, 404, 503))
    async def count_album(self, request: Request, albums: AlbumService, album: str) -> dict[str, int]:
        return {"count": await albums.count_album(album, principal_of_request(request))}

    @get(
        "/count/article/{album:str}/{article:str}",
        responses=answers(200, CountAnswer, "Images", 400, 401, 403, 404, 503),
    )
    async def count_article(self, request: Request, albums: AlbumService, album: str, article: str) -> dict[str, int]:
        return {"count": await albums.count_article(album, article, principal_of_request(request))}

    @get("/jobs/{job_id:str}", responses=answers(200, JobAnswer, "The job's state and report so far", 404, 503))
    async def job(self, request: Request, albums: AlbumService, images: ImageService, job_id: str) -> Response:
        """A ZIP upload's job: its starter (or, for an anonymous upload, whoever holds its id) and
        admins see it; to anyone else it does not exist (404)."""
        found = await albums.intake.read_job(job_id, principal_of_request(request))
        return Response(job_json(request, job_id, found, Links(request, images)))

    @delete(
        "/delete-album/{album:str}",
        status_code=200,
        responses=answers(200, DeleteAnswer, "Deleted with its images", 400, 401, 403, 404, 503),
    )
    async def delete_album(self, request: Request, albums: AlbumService, album: str) -> Response:
        """Admins and the album's creator; every image goes through the crash-safe delete."""
        count = await albums.delete_album(album, principal_of_request(request))
        return Response({"status": "success", "message": say(request, ALBUM_DELETED, name=album, count=count)})

    @delete(
        "/delete-article/{album:str}/{article:str}",
        status_code=200,
        responses=answers(200, DeleteAnswer, "Deleted with its images", 400, 401, 403, 404, 503),
    )
    async def delete_article(self, request: Request, albums: AlbumService, album: str, article: str) -> Response:
        count = await albums.delete_article(album, article, principal_of_request(request))
        message = say(request, ARTICLE_DELETED, article=article, album=album, count=count)
        return Response({"status": "success", "message": message})


MANAGE_ERRORS = (400, 401, 403, 404, 422, 503)


class AlbumManageController(Controller):
    """Renaming, moving and reordering (admins and the album's creator), PicHosting-style: JSON
    bodies, answers with `status`, `message` and the album's name and article's code as stored."""

    path = "/api"

    @post(
        "/rename-album/{album:str}",
        status_code=200,
        operation_class=RenameBody,
        responses=with_conflict(
            answers(200, RenamedAlbumAnswer, "Renamed", *MANAGE_ERRORS), "Another album has the new name"
        ),
    )
    async def rename_album(self, request: Request, albums: AlbumService, album: str) -> Response:
        """`{"new_name": "..."}`."""
        new_name = text_field(await json_object(request), "new_name")
        name = await albums.rename_album(album, new_name, principal_of_request(request))
        message = say(request, ALBUM_RENAMED, old=album, new=name)
        return Response({"status": "success", "message": message, "album_name": name})

    @post(
        "/rename-article/{album:str}/{article:str}",
        status_code=200,
        operation_class=RenameBody,
        responses=with_conflict(
            answers(200, ArticleAnswer, "Renamed", *MANAGE_ERRORS), "The album has an article with the new code"
        ),
    )
    async def rename_article(self, request: Request, albums: AlbumService, album: str, article: str) -> Response:
        """`{"new_name": "..."}`: the article's new code within its album."""
        new_name = text_field(await json_object(request), "new_name")
        code = await albums.rename_article(album, article, new_name, principal_of_request(request))
        album = catalogue_name(album)
        message = say(request, ARTICLE_RENAMED, old=catalogue_name(article), album=album, new=code)
        return Response({"status": "success", "message": message, "album_name": album, "article_number": code})

    @post(
        "/move-images",
        status_code=200,
        operation_class=MoveBody,
        responses=with_conflict(
            answers(200, MovedAnswer, "Moved", *MANAGE_ERRORS), "The article already holds the same file"
        ),
    )
    async def move_images(self, request: Request, albums: AlbumService) -> Response:
        """`{"image_ids": [...], "album_name": "...", "article_name": "..."}`: into that article
        (created when missing), after its last photo; articles left empty are deleted. All or
        nothing: a file the article already holds refuses the move (409)."""
        values = await json_object(request)
        ids = ids_field(values, "image_ids")
        album_name, article_name = text_field(values, "album_name"), text_field(values, "article_name")
        moved = await albums.move_images(ids, album_name, article_name, principal_of_request(request))
        return Response(moved_json(request, moved))

    @post(
        "/reorder/{album:str}/{article:str}",
        status_code=200,
        operation_class=ReorderBody,
        responses=answers(200, ArticleAnswer, "The new photo order is saved", *MANAGE_ERRORS),
    )
    async def reorder(self, request: Request, albums: AlbumService, album: str, article: str) -> Response:
        """`{"image_ids": [...]}`: every image of the article, each once, in the new order (else 422)."""
        ids = ids_field(await json_object(request), "image_ids")
        principal = principal_of_request(request)
        count = await albums.reorder_article(album, article, ids, principal)
        album, article = catalogue_name(album), catalogue_name(article)  # as stored (checked by now)
        message = say(request, ARTICLE_REORDERED, article=article, album=album, count=count)
        return Response({"status": "success", "message": message, "album_name": album, "article_number": article})
