"""HTTP for link previews: GET /oembed (the tags are written by the pages themselves)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.params import Parameter

from imagehost.accounts.identity import principal_of_request
from imagehost.albums.service import AlbumService
from imagehost.api.openapi import answers
from imagehost.errors import MissingParameter
from imagehost.images.links import Links
from imagehost.images.service import ImageService
from imagehost.previews.oembed import CACHE_AGE, OEmbed
from imagehost.web.query import whole_number

LARGEST_SIDE = 100_000


class OEmbedController(Controller):
    @get("/oembed", responses=answers(200, dict, "The oEmbed answer (photo or rich)", 400, 401, 403, 404, 501, 503))
    async def oembed(
        self,
        request: Request,
        images: ImageService,
        albums: AlbumService,
        url: str | None = None,
        maxwidth: str | None = None,
        maxheight: str | None = None,
        # The spec's name. Documented as "json" only; anything else (xml) answers 501 as the spec says.
        format: Annotated[str | None, Parameter(schema_extra={"enum": ["json"]})] = None,
    ) -> Response[Any]:
        """oembed.com: `url` an image page, direct link, album or article page of this site."""
        if not (url or "").strip():
            raise MissingParameter(name="url")
        width = whole_number("maxwidth", maxwidth, low=1, high=LARGEST_SIDE, default=0) or None
        height = whole_number("maxheight", maxheight, low=1, high=LARGEST_SIDE, default=0) or None
        translator = request.app.state.translator  # its language was chosen by web/guard.py
        answer = await OEmbed(images, albums).answer(
            url or "",
            width,
            height,
            (format or "json").strip().lower(),
            principal_of_request(request),
            Links(request, images),
            translator.gettext("ImageHost"),
        )
        scope = "private" if images.settings.private_images else "public"
        return Response(
            answer,
            media_type="application/json",
            headers={"Cache-Control": f"{scope}, max-age={CACHE_AGE}", "Vary": "Accept-Language"},
        )
