"""POST /api/images, GET /api/images/{id}, GET /logs: the Image API design, under /api/ because
/images/ is the direct-link space here."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import File

from imagehost.accounts.identity import principal_of_request
from imagehost.accounts.principal import Kind
from imagehost.errors import ImageNotFound, InvalidParameter
from imagehost.images.controllers import IMAGE_SECURITY_HEADERS, Links, uploaded_file
from imagehost.images.service import ImageService
from imagehost.logging import tail_lines

LOG_LIMIT_DEFAULT = 200
LOG_LIMIT_MAX = 10_000
BOX_MAX = 20_000


def _whole_number(field: str, raw: Any, low: int, high: int) -> int:
    try:
        number = int(str(raw).strip())
    except ValueError:
        raise InvalidParameter(field=field, reason=f"must be a whole number from {low} to {high}") from None
    if not low <= number <= high:
        raise InvalidParameter(field=field, reason=f"must be from {low} to {high}")
    return number


def _optional(form: Any, field: str, low: int, high: int) -> int | None:
    raw = form.get(field)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    return _whole_number(field, raw, low, high)


class ConversionController(Controller):
    path = "/api/images"

    @post()
    async def convert(self, request: Request, images: ImageService) -> Response:
        form = await request.form()
        quality = _optional(form, "quality", 1, 95) or images.settings.default_quality
        box = (_optional(form, "x", 1, BOX_MAX), _optional(form, "y", 1, BOX_MAX))
        async with images.intake:
            incoming = await uploaded_file(form, images.settings.api_max_upload_bytes)
            result = await images.convert(incoming, quality, box, principal_of_request(request))
        image = result.image
        return Response(
            {
                "id": image.id,
                "width": image.width,
                "height": image.height,
                "quality": image.quality,
                "size_bytes": image.size_bytes,
                "content_type": image.content_type,
                "source_format": image.source_format,
                "filename": image.stored_name,
                "url": Links(request, images).image(image),
            },
            status_code=201,
        )

    @get("/{image_id:int}")
    async def fetch(self, request: Request, image_id: int, images: ImageService) -> File:
        image = await images.view(image_id, principal_of_request(request))
        path = images.store.path_of(image.stored_name)  # refuses a row that names no stored file
        if not path.is_file():
            raise ImageNotFound(name=image.stored_name)
        return File(
            path, media_type=image.content_type, content_disposition_type="inline", headers=IMAGE_SECURITY_HEADERS
        )


@get("/logs", media_type="text/plain")
async def read_logs(request: Request, limit: str | None = None) -> str:
    """The log names people: service tokens (API_TOKENS) and admins' tokens may read it."""
    principal = principal_of_request(request)
    if principal.kind is not Kind.SERVICE_TOKEN:
        request.app.state.image_service.policy.require_admin(principal)
    count = LOG_LIMIT_DEFAULT if limit is None else _whole_number("limit", limit, 1, LOG_LIMIT_MAX)
    lines = tail_lines(request.app.state.settings.log_dir / "app.log", count)
    return "\n".join(lines) + ("\n" if lines else "")
