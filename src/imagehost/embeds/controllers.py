"""HTTP for embeds: a small whole page for an iframe, the bare fragment for htmx (`HX-Request`),
each with an entity tag so that an unchanged embed answers 304. Framing, CORS and cookies are
settled for every answer under /embed/ in embeds/framing.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Controller, Request, Response, get

from imagehost.accounts.identity import principal_of_request
from imagehost.albums.service import AlbumService
from imagehost.api.openapi import answers
from imagehost.embeds.codes import album_embed_url, album_page_path
from imagehost.embeds.service import (
    DEFAULT_LIMIT,
    LARGEST_LIMIT,
    Embeds,
    Gallery,
    fingerprint,
    gallery_fingerprint,
    image_fingerprint,
)
from imagehost.images.links import Links, image_json, page_json
from imagehost.images.service import ImageService
from imagehost.settings import Settings
from imagehost.web.query import page_number, whole_number
from imagehost.web.responses import representation, respond

VARY = "HX-Request, Accept, Accept-Language, Origin"
MAX_AGE = 60  # short: a new image shows in the embeds of other sites within a minute


def cache_control(settings: Settings) -> str:
    """Shared caches may keep an embed, unless only some visitors may see it."""
    closed = settings.private_images or not settings.anonymous_may_browse
    return f"{'private' if closed else 'public'}, max-age={MAX_AGE}"


def unchanged(request: Request, etag: str) -> bool:
    offered = request.headers.get("if-none-match", "")
    tags = {tag.strip().removeprefix("W/") for tag in offered.split(",")}
    return etag in tags or "*" in tags


def embed_answer(
    request: Request,
    settings: Settings,
    *,
    page: str,
    fragment: str,
    context: dict[str, Any],
    shown: tuple[object, ...],
    json: Callable[[], Any],
) -> Response:
    """The page, the fragment or JSON (web/responses.py decides), or 304 when the client has it."""
    translator = request.app.state.translator
    etag = fingerprint(representation(request), translator.current(), *shown)
    headers = {"Vary": VARY, "ETag": etag, "Cache-Control": cache_control(settings)}
    if unchanged(request, etag):
        return Response(b"", status_code=304, headers=headers)
    return respond(request, page=page, fragment=fragment, context=context, json=json, headers=headers)


def limit_of(raw: str | None) -> int:
    return whole_number("limit", raw, low=1, high=LARGEST_LIMIT, default=DEFAULT_LIMIT)


ERRORS = (400, 401, 403, 404, 503)


class EmbedController(Controller):
    path = "/embed"

    @get("/i/{stored_name:str}", responses=answers(200, dict, "An image card", *ERRORS))
    async def image(self, request: Request, images: ImageService, albums: AlbumService, stored_name: str) -> Response:
        """The picture (srcset from its thumbnails), its original name and a link to its page."""
        image = await Embeds(images, albums).image(stored_name, principal_of_request(request))
        links = Links(request, images)
        return embed_answer(
            request,
            images.settings,
            page="embeds/image.html",
            fragment="embeds/_image.html",
            context={"image": image, "links": links},
            shown=(links.site, links.image(image), image_fingerprint(image)),
            json=lambda: {"status": "success", **image_json(image, links)},
        )

    @get("/album/{album:str}", responses=answers(200, dict, "A page of an album's thumbnails", *ERRORS))
    async def album(
        self,
        request: Request,
        images: ImageService,
        albums: AlbumService,
        album: str,
        page: str | None = None,
        limit: str | None = None,
    ) -> Response:
        gallery = await Embeds(images, albums).album(
            album, page_number(page), limit_of(limit), principal_of_request(request)
        )
        return self._gallery(request, images, gallery, "embeds/album.html")

    @get("/album/{album:str}/{article:str}", responses=answers(200, dict, "A page of an article's thumbnails", *ERRORS))
    async def article(
        self,
        request: Request,
        images: ImageService,
        albums: AlbumService,
        album: str,
        article: str,
        page: str | None = None,
        limit: str | None = None,
    ) -> Response:
        gallery = await Embeds(images, albums).article(
            album, article, page_number(page), limit_of(limit), principal_of_request(request)
        )
        return self._gallery(request, images, gallery, "embeds/album.html")

    @get("/latest", responses=answers(200, dict, "The newest images", *ERRORS))
    async def latest(
        self, request: Request, images: ImageService, albums: AlbumService, limit: str | None = None
    ) -> Response:
        gallery = await Embeds(images, albums).latest(limit_of(limit), principal_of_request(request))
        return self._gallery(request, images, gallery, "embeds/latest.html")

    @staticmethod
    def _gallery(request: Request, images: ImageService, gallery: Gallery, page: str) -> Response:
        links = Links(request, images)
        here = album_embed_url(links, gallery.album, gallery.article) if gallery.album else f"{links.site}/embed/latest"
        return embed_answer(
            request,
            images.settings,
            page=page,
            fragment="embeds/_gallery.html",
            context={"gallery": gallery, "links": links, "here": here, "album_page_url": album_page_path},
            shown=(links.site, links.image(gallery.images[0]) if gallery.images else "", gallery_fingerprint(gallery)),
            json=lambda: page_json(gallery, links),
        )
