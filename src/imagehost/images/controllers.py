"""HTTP for images: parse the request, call the service, pick the representation. Nothing else."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, Response, delete, get, post, route
from litestar.datastructures import UploadFile
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.response import Redirect

from imagehost.accounts.identity import principal_of_request
from imagehost.accounts.principal import Kind
from imagehost.api.openapi import (
    CatalogueAnswer,
    DeleteAnswer,
    ImagePageAnswer,
    RecentUploadsAnswer,
    UploadAnswer,
    answers,
    binary,
    multipart,
    text,
)
from imagehost.errors import ImageHostError, ImageNotFound, InvalidParameter
from imagehost.images.inspection import CONTENT_TYPES, EXTENSIONS
from imagehost.images.links import Links, image_json, page_json
from imagehost.images.service import DeleteCredentials, ImageService, IncomingFile, StoredImage, UploadResult
from imagehost.images.storage import is_stored_name
from imagehost.previews.tags import image_preview
from imagehost.web.errors import Refusal, refusal_of
from imagehost.web.query import page_number
from imagehost.web.responses import representation, respond
from imagehost.web.sending import send

UPLOAD_FILE = Schema(
    type=OpenAPIType.STRING,
    format="binary",  # type: ignore[arg-type]
    description="The image (JPEG, PNG or GIF), or a ZIP. Repeat the part for several images: the answer is"
    ' then {"status", "results": [one single-upload answer or {"status": "error", "error", "filename"} each]}',
)
# Served user content is inert: a browser may show it as an image and nothing else.
IMAGE_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox",
    "Cross-Origin-Resource-Policy": "cross-origin",
}
IMMUTABLE = "public, max-age=31536000, immutable"
# With PRIVATE_IMAGES a shared cache must not keep what one person was allowed to see.
PRIVATE_IMMUTABLE = "private, max-age=31536000, immutable"
CONTENT_TYPE_BY_EXTENSION = {ext: CONTENT_TYPES[name] for name, ext in EXTENSIONS.items()}
SESSION_UPLOADS = "uploads"
DELETE_KEY_HEADER = "x-delete-key"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def cache_control(images: ImageService) -> str:
    return PRIVATE_IMMUTABLE if images.settings.private_images else IMMUTABLE


def private_refusal(request: Request, images: ImageService) -> Response | None:
    """With PRIVATE_IMAGES, the same answer nginx gives a visitor who may not browse."""
    if images.settings.private_images and not images.policy.may_browse(principal_of_request(request)):
        return Response(
            "Sign in to see this image.\n", status_code=401, media_type="text/plain", headers=IMAGE_SECURITY_HEADERS
        )
    return None


def deletable(request: Request, images: ImageService, shown: list[StoredImage]) -> set[int]:
    """Which of these rows get a Delete button: those this browser holds the key of, and those the
    policy lets this person delete (their own, or any for an admin)."""
    principal = principal_of_request(request)
    keys = remembered_keys(request)
    return {
        image.id
        for image in shown
        if image.id in keys or images.policy.may_delete(principal, image.uploader_sub, has_key=False, operator=False)
    }


def remembered_keys(request: Request) -> dict[int, str]:
    """This browser's anonymous uploads: id -> delete key, from its signed session cookie."""
    entries = request.session.get(SESSION_UPLOADS, []) if request.session else []
    return {int(entry[0]): str(entry[2]) for entry in entries if len(entry) >= 3 and entry[2]}


def remember_upload(request: Request, image: StoredImage, delete_key: str, keep: int) -> None:
    """Remember an upload for "your recent uploads". The delete key is kept only for anonymous
    uploads: a signed-in person deletes by ownership, and a key left in the browser would let the
    next person on it delete their images after they signed out."""
    principal = principal_of_request(request)
    owner = principal.sub if principal.signed_in else ""
    entries = [entry for entry in request.session.get(SESSION_UPLOADS, []) if entry[0] != image.id]
    entries.insert(0, [image.id, image.stored_name, "" if owner else delete_key, owner or ""])
    request.set_session({**request.session, SESSION_UPLOADS: entries[:keep]})


def forget_upload(request: Request, image_id: int) -> None:
    entries = request.session.get(SESSION_UPLOADS, []) if request.session else []
    if any(entry[0] == image_id for entry in entries):
        kept = [entry for entry in entries if entry[0] != image_id]
        request.set_session({**request.session, SESSION_UPLOADS: kept})


def recent_ids(request: Request) -> list[int]:
    """The uploads this browser lists as its own: anonymous ones, and the signed-in person's."""
    principal = principal_of_request(request)
    entries = request.session.get(SESSION_UPLOADS, []) if request.session else []
    return [int(e[0]) for e in entries if len(e) < 4 or not e[3] or e[3] == principal.sub]


async def uploaded_file(field: UploadFile | None, limit: int) -> IncomingFile | None:
    """The bytes of a multipart `file` part, or None when there is none.

    Litestar spools the part to disk past 1 MB; at most one byte over `limit` is read into memory,
    which is enough for the service to refuse it.
    """
    if field is None:
        return None
    try:
        return IncomingFile(original_name=field.filename, content=await field.read(limit + 1))
    finally:
        await field.close()


def content_disposition(original_name: str) -> str:
    """RFC 6266: an ASCII fallback and the exact name in filename*, safe for any name."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in original_name)
    return f"attachment; filename=\"{fallback or 'image'}\"; filename*=UTF-8''{quote(original_name, safe='')}"


class UploadController(Controller):
    path = "/upload"

    @get(responses=answers(200, RecentUploadsAnswer, "This browser's recent uploads", 401, 403, 503))
    async def upload_page(self, request: Request, images: ImageService) -> Response:
        images.policy.require_upload(principal_of_request(request))
        recent = await images.some(recent_ids(request))
        return respond(
            request,
            page="upload/index.html",
            fragment="upload/index.html",
            context={"recent": recent, "links": Links(request, images), "result": None},
            json=lambda: {"status": "success", "data": [image_json(i, Links(request, images)) for i in recent]},
        )

    @post(
        status_code=201,
        operation_class=multipart(
            file=UPLOAD_FILE,
            zipfile=Schema(type=OpenAPIType.STRING, format="binary", description="A ZIP of album folders"),  # type: ignore[arg-type]
            album_name=text("Put the images (or the ZIP) into this album"),
            article_name=text("...and this article (default: from each file's name, SKU3_2.jpg -> SKU3)"),
            mode=text("For a ZIP: merge (default) or replace the album's earlier images", "merge", "replace"),
        ),
        responses=answers(201, UploadAnswer, "Stored", 400, 401, 403, 408, 413, 415, 422, 429, 503, 507),
    )
    async def upload(self, request: Request, images: ImageService, albums: Any) -> Response:
        """One image (`file`), several (`file` parts: one answer each in `results`), or a ZIP.
        `album_name` and `article_name` put the images into an album (albums/uploads.py)."""
        form = await request.form()
        from imagehost.albums import uploads  # albums import images

        if (archive := await uploads.archive_part(form)) is not None:  # a ZIP: unpacked into its album
            return await uploads.upload_archive_from_page(request, form, archive, albums, images)
        principal = principal_of_request(request)
        parts = uploads.file_parts(form)
        try:
            destination = await uploads.destination(albums, form, principal)
        except ImageHostError:
            for part in parts:
                await part.close()
            raise
        if len(parts) > 1:
            return await self._upload_several(request, images, albums, parts, destination)
        incoming = await uploaded_file(parts[0] if parts else None, images.settings.max_upload_bytes)
        link = await destination.link(albums, incoming, principal) if destination and incoming else None
        async with images.intake:
            result = await images.upload(incoming, principal, link=link)
        remember_upload(request, result.image, result.delete_key, images.settings.recent_uploads_kept)
        links = Links(request, images)
        image = result.image
        context = {
            "result": result,
            "image": image,
            "links": links,
            # The recent list is HTML only (page, or the fragment's out-of-band part): no query for JSON.
            "recent": await images.some(recent_ids(request)) if representation(request) != "json" else [],
        }
        return respond(
            request,
            page="upload/index.html",
            fragment="upload/_result.html",
            context=context,
            status_code=201,
            json=lambda: upload_json(image, result.delete_key, links),
        )

    async def _upload_several(
        self, request: Request, images: ImageService, albums: Any, parts: list[UploadFile], destination: Any
    ) -> Response:
        """Each file on its own, one after the other: a refusal is that file's answer and never stops
        the others. 201 when any was stored, else the first refusal's status."""
        principal = principal_of_request(request)
        links = Links(request, images)
        outcomes: list[UploadResult | Refusal] = []
        for part in parts:
            name = part.filename
            try:
                incoming = await uploaded_file(part, images.settings.max_upload_bytes)
                link = await destination.link(albums, incoming, principal) if destination and incoming else None
                async with images.intake:
                    result = await images.upload(incoming, principal, link=link)
            except ImageHostError as error:
                outcomes.append(refusal_of(request, error, name))
                continue
            remember_upload(request, result.image, result.delete_key, images.settings.recent_uploads_kept)
            outcomes.append(result)
        stored = [outcome for outcome in outcomes if isinstance(outcome, UploadResult)]
        first_refusal = next((outcome for outcome in outcomes if isinstance(outcome, Refusal)), None)
        status_code = 201 if stored or first_refusal is None else first_refusal.status_code
        context = {
            "results": outcomes,
            "links": links,
            "recent": await images.some(recent_ids(request)) if representation(request) != "json" else [],
        }
        return respond(
            request,
            page="upload/index.html",
            fragment="upload/_results.html",
            context=context,
            status_code=status_code,
            json=lambda: {
                "status": "success" if stored else "error",
                "results": [
                    upload_json(outcome.image, outcome.delete_key, links)
                    if isinstance(outcome, UploadResult)
                    else outcome.json()
                    for outcome in outcomes
                ],
            },
        )


CATALOGUE_VIEWS = ("table", "grid")


def catalogue_view(raw: str | None) -> str:
    view = (raw or "table").strip().lower() or "table"
    if view not in CATALOGUE_VIEWS:
        raise InvalidParameter(field="view", reason="table or grid")
    return view


def upload_json(image: StoredImage, delete_key: str, links: Links) -> dict[str, Any]:
    """A single upload's answer: the image's JSON and the link that deletes it."""
    return {"status": "success", **image_json(image, links), "delete_url": links.delete(image, delete_key)}


class CatalogueController(Controller):
    @get("/images", responses=answers(200, CatalogueAnswer, "One page of the catalogue", 400, 401, 403, 503))
    async def catalogue(
        self,
        request: Request,
        images: ImageService,
        page: str | None = None,
        uploader: str | None = None,
        album_name: str | None = None,
        article_name: str | None = None,
        view: str | None = None,
    ) -> Response:
        """`view=grid` shows the page as thumbnail cards instead of the table (HTML only)."""
        # Litestar routes /images and /images/ alike; the raw path tells them apart.
        if not request.scope.get("raw_path", b"/").split(b"?")[0].endswith(b"/"):
            query = f"?{request.url.query}" if request.url.query else ""
            return Redirect(f"/images/{query}", status_code=301)
        principal = principal_of_request(request)
        shown_as = catalogue_view(view)  # a bad view is refused before any query
        uploader = principal.sub if uploader == "me" else uploader
        album_name, article_name = (album_name or "").strip() or None, (article_name or "").strip() or None
        catalogue = await images.page(
            page_number(page), principal, uploader or None, album_name, article_name if album_name else None
        )
        links = Links(request, images)
        return respond(
            request,
            page="images/index.html",
            fragment="images/_table.html",
            context={
                "catalogue": catalogue,
                "links": links,
                "deletable": deletable(request, images, catalogue.images),
                "uploader": uploader or "",
                "album_name": album_name or "",
                "article_name": (article_name or "") if album_name else "",
                "show_uploaders": images.policy.sees_uploaders(principal),
                "view": shown_as,
            },
            json=lambda: page_json(catalogue, links),
        )

    @get("/images-list", responses=answers(200, CatalogueAnswer, "One page of the catalogue", 400, 401, 403, 503))
    async def images_list(
        self,
        request: Request,
        images: ImageService,
        page: str | None = None,
        uploader: str | None = None,
        album_name: str | None = None,
        article_name: str | None = None,
    ) -> Response:
        principal = principal_of_request(request)
        uploader = principal.sub if uploader == "me" else uploader
        album_name, article_name = (album_name or "").strip() or None, (article_name or "").strip() or None
        catalogue = await images.page(
            page_number(page), principal, uploader or None, album_name, article_name if album_name else None
        )
        return Response(page_json(catalogue, Links(request, images)))

    @get("/_auth/images", include_in_schema=False)
    async def authorize_image(self, request: Request, images: ImageService) -> Response:
        """nginx's auth_request with PRIVATE_IMAGES: 204 lets it serve the file, 401 refuses."""
        if images.settings.private_images and not images.policy.may_browse(principal_of_request(request)):
            return Response("", status_code=401, headers=IMAGE_SECURITY_HEADERS)
        return Response(None, status_code=204)

    @route("/images/{stored_name:str}", http_method=["GET", "HEAD"], include_in_schema=False)
    async def serve_image(self, request: Request, stored_name: str, images: ImageService) -> Response:
        """Direct links when no nginx is in front (`just run`); nginx answers these itself in the stack."""
        if refused := private_refusal(request, images):
            return refused
        served = await images.files.served(stored_name)
        if served is None:
            return Response(
                "Not found\n",
                status_code=404,
                media_type="text/plain",
                headers=IMAGE_SECURITY_HEADERS,
            )
        return send(
            served,
            CONTENT_TYPE_BY_EXTENSION["." + stored_name.rsplit(".", 1)[1]],
            {**IMAGE_SECURITY_HEADERS, "Cache-Control": cache_control(images)},
            inline=True,
        )

    @route("/images/thumbs/{size:int}/{thumbnail_name:str}", http_method=["GET", "HEAD"], include_in_schema=False)
    async def serve_thumbnail(self, request: Request, size: int, thumbnail_name: str, images: ImageService) -> Response:
        """Thumbnails when no nginx is in front; nginx serves this same URL from disk in the stack."""
        if refused := private_refusal(request, images):
            return refused
        stored_name = thumbnail_name.removesuffix(".webp")
        served = None
        if thumbnail_name.endswith(".webp") and is_stored_name(stored_name):
            served = await images.files.served_thumbnail(size, stored_name)
        if served is None:
            return Response("Not found\n", status_code=404, media_type="text/plain", headers=IMAGE_SECURITY_HEADERS)
        return send(
            served, "image/webp", {**IMAGE_SECURITY_HEADERS, "Cache-Control": cache_control(images)}, inline=True
        )

    @get("/i/{stored_name:str}", responses=answers(200, ImagePageAnswer, "One image", 401, 403, 404, 503))
    async def image_page(self, request: Request, stored_name: str, images: ImageService) -> Response:
        """A page for one image: the large thumbnail, the direct link and ready snippets."""
        image = await images.find_by_name(stored_name, principal_of_request(request))
        links = Links(request, images)
        return respond(
            request,
            page="images/show.html",
            fragment="images/show.html",
            context={
                "image": image,
                "links": links,
                "preview": image_preview(image, links, images.settings.private_images),
            },
            json=lambda: {"status": "success", **image_json(image, links)},
        )

    @route(
        "/download/{image_id:int}",
        http_method=["GET", "HEAD"],
        responses=binary(200, "image/*", "The file, as an attachment", 401, 403, 404, 503),
    )
    async def download(self, request: Request, image_id: int, images: ImageService) -> Response:
        image = await images.view(image_id, principal_of_request(request))
        headers = {
            **IMAGE_SECURITY_HEADERS,
            "Content-Disposition": content_disposition(image.download_name),
        }
        images.store.path_of(image.stored_name)  # refuses a row that names no stored file
        if images.settings.accel_downloads and not images.settings.in_bucket:
            # nginx sends the file itself from its internal location; the app only says which one.
            return Response(
                b"",
                media_type=image.content_type,
                headers={**headers, "X-Accel-Redirect": f"/_stored/{image.stored_name}"},
            )
        served = await images.files.served(image.stored_name)
        if served is None:
            raise ImageNotFound(name=image.stored_name)
        return send(served, image.content_type, headers, inline=False)


class DeleteController(Controller):
    path = "/delete"

    @staticmethod
    def _credentials(request: Request, image_id: int, key: str | None) -> DeleteCredentials:
        principal = principal_of_request(request)
        return DeleteCredentials(
            principal=principal,
            keys=tuple(
                k for k in (key, request.headers.get(DELETE_KEY_HEADER), remembered_keys(request).get(image_id)) if k
            ),
            # ADMIN_TOKEN was checked once, by accounts/identity.py, when it resolved the caller.
            operator=principal.kind is Kind.OPERATOR,
        )

    async def _delete(self, request: Request, images: ImageService, image_id: int, key: str | None) -> StoredImage:
        image = await images.delete(image_id, self._credentials(request, image_id, key))
        forget_upload(request, image_id)
        return image

    @get("/{image_id:int}", responses=answers(200, ImagePageAnswer, "What the link would delete", 401, 403, 404, 503))
    async def confirm_delete(
        self, request: Request, images: ImageService, image_id: int, key: str | None = None
    ) -> Response:
        """A delete link opened in a browser (ShareX opens its DeletionURL so; people click links
        from chats): a page that asks first, and deletes only when its form is sent (POST, which
        the cross-site guard covers). A wrong key gets the same 403 as a delete would."""
        image = await images.deletable(image_id, self._credentials(request, image_id, key))
        links = Links(request, images)
        return respond(
            request,
            page="images/delete.html",
            fragment="images/delete.html",
            context={"image": image, "links": links, "key": key or ""},
            json=lambda: {"status": "success", **image_json(image, links)},
            # The key is in this page's URL: no Referer carries it to the images' host, no cache keeps it.
            headers={"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"},
        )

    @delete("/{image_id:int}", status_code=200, responses=answers(200, DeleteAnswer, "Deleted", 401, 403, 404, 503))
    async def delete_image(
        self, request: Request, images: ImageService, image_id: int, key: str | None = None
    ) -> Response:
        """The key may come as `?key=`, the X-Delete-Key header or a form field (`key`); the last two
        keep it out of URLs, and so out of access logs and browser history."""
        if key is None and request.headers.get("content-type", "").startswith(FORM_TYPES):
            key = (await request.form()).get("key")
        await self._delete(request, images, image_id, key)
        if representation(request) == "fragment":
            # An empty 200 removes the row; the event makes the table refill itself to 10 rows.
            return Response("", headers={"HX-Trigger": "image-deleted", "Vary": "HX-Request, Accept"})
        return Response({"status": "success", "message": "Image deleted successfully."})

    @post("/{image_id:int}", status_code=200, responses=answers(200, DeleteAnswer, "Deleted", 401, 403, 404, 503))
    async def delete_from_form(
        self, request: Request, images: ImageService, image_id: int, key: str | None = None, page: str | None = None
    ) -> Response:
        """The same delete for a page without JavaScript (a form can only POST)."""
        form = await request.form()
        key = key or form.get("key")
        await self._delete(request, images, image_id, key)
        if representation(request) == "json":
            return Response({"status": "success", "message": "Image deleted successfully."})
        back = str(page or form.get("page") or "1")
        return Redirect(f"/images/?page={back if back.isdigit() and len(back) < 9 else 1}", status_code=303)
