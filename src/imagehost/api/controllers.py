"""POST /api/images, GET /api/images/{id}, GET /logs: the Image API design, under /api/ because
/images/ is the direct-link space here."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile

from imagehost.accounts.identity import principal_of_request
from imagehost.accounts.principal import Kind
from imagehost.api.openapi import FILE, ConversionAnswer, answers, binary, multipart, whole
from imagehost.errors import ImageNotFound
from imagehost.images.controllers import IMAGE_SECURITY_HEADERS, Links, uploaded_file
from imagehost.images.links import image_json
from imagehost.images.service import ImageService
from imagehost.logging import tail_lines
from imagehost.web.query import form_whole_number, whole_number
from imagehost.web.sending import send

LOG_LIMIT_DEFAULT = 200
LOG_LIMIT_MAX = 10_000
BOX_MAX = 20_000


class ConversionController(Controller):
    path = "/api/images"

    @post(
        status_code=201,
        operation_class=multipart(
            file=FILE,
            quality=whole("JPEG quality (default DEFAULT_QUALITY)", 1, 95),
            x=whole("Width of the box the image is fitted into", 1, BOX_MAX),
            y=whole("Height of the box the image is fitted into", 1, BOX_MAX),
        ),
        responses=answers(201, ConversionAnswer, "Converted and stored", 400, 401, 403, 413, 415, 422, 503, 507),
    )
    async def convert(self, request: Request, images: ImageService) -> Response:
        form = await request.form()
        quality = form_whole_number(form, "quality", low=1, high=95) or images.settings.default_quality
        box = (form_whole_number(form, "x", low=1, high=BOX_MAX), form_whole_number(form, "y", low=1, high=BOX_MAX))
        async with images.intake:
            field = form.get("file")
            incoming = await uploaded_file(
                field if isinstance(field, UploadFile) else None, images.settings.api_max_upload_bytes
            )
            result = await images.convert(incoming, quality, box, principal_of_request(request))
        image = result.image
        extra = {"quality": image.quality, "size_bytes": image.size_bytes, "source_format": image.source_format}
        return Response({**image_json(image, Links(request, images)), **extra}, status_code=201)

    @get("/{image_id:int}", responses=binary(200, "image/jpeg", "The stored JPEG", 401, 403, 404, 503))
    async def fetch(self, request: Request, image_id: int, images: ImageService) -> Response:
        image = await images.view(image_id, principal_of_request(request))
        images.store.path_of(image.stored_name)  # refuses a row that names no stored file
        served = await images.files.served(image.stored_name)
        if served is None:
            raise ImageNotFound(name=image.stored_name)
        return send(served, image.content_type, IMAGE_SECURITY_HEADERS, inline=True)


@get("/logs", media_type="text/plain", responses=binary(200, "text/plain", "The last lines of app.log", 400, 401, 403))
async def read_logs(request: Request, limit: str | None = None) -> str:
    """The log names people: service tokens (API_TOKENS) and admins' tokens may read it."""
    principal = principal_of_request(request)
    if principal.kind is not Kind.SERVICE_TOKEN:
        request.app.state.image_service.policy.require_admin(principal)
    count = whole_number("limit", limit, low=1, high=LOG_LIMIT_MAX, default=LOG_LIMIT_DEFAULT)
    settings = request.app.state.settings
    lines = tail_lines(settings.log_dir / settings.log_file_name, count)
    return "\n".join(lines) + ("\n" if lines else "")
