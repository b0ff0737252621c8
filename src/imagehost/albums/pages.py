"""The album pages: /albums (a grid with a search), an album's articles, an article's gallery.

The listings read only indexes: a page of albums or articles (by name, LIMIT/OFFSET), and for
each item on the page its cover (the newest image, or the first photo) and counts through the
album_images indexes. Deleting goes through AlbumService (the crash-safe image delete).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get, route
from litestar.response import Redirect

from imagehost.accounts.identity import principal_of_request
from imagehost.accounts.principal import Principal
from imagehost.albums.controllers import ALBUM_DELETED, ARTICLE_DELETED, say
from imagehost.albums.names import catalogue_name
from imagehost.albums.service import AlbumService, FoundAlbum
from imagehost.albums.tables import AlbumImage, Article
from imagehost.api.openapi import DeleteAnswer, answers
from imagehost.errors import AlbumNotFound, ArticleNotFound
from imagehost.images.links import Links
from imagehost.images.service import ImageService, StoredImage
from imagehost.web.query import page_number
from imagehost.web.responses import representation, respond

GRID_PAGE_SIZE = 24
LONGEST_SEARCH = 200
# The images columns StoredImage.from_row reads (the cover's prefixed with cover_).
_IMAGE_COLUMNS = (
    "id",
    "stored_name",
    "original_name",
    "size_bytes",
    "file_format",
    "sha256",
    "uploaded_at",
    "width",
    "height",
    "source_format",
    "quality",
    "uploader_sub",
    "uploader_name",
)

# Each album on the page with its newest image (album_images_album_newest) and its counts.
_ALBUMS = (
    "SELECT al.id, al.name, al.created_by_sub, (SELECT count(*) FROM articles ar WHERE ar.album = al.id)"
    " AS articles, (SELECT count(*) FROM album_images ai WHERE ai.album = al.id) AS images, c.id AS"
    " cover_id, c.stored_name AS cover_stored_name, c.original_name AS cover_original_name, c.size_bytes"
    " AS cover_size_bytes, c.file_format AS cover_file_format, c.sha256 AS cover_sha256, c.uploaded_at AS"
    " cover_uploaded_at, c.width AS cover_width, c.height AS cover_height, c.source_format AS"
    " cover_source_format, c.quality AS cover_quality, c.uploader_sub AS cover_uploader_sub,"
    " c.uploader_name AS cover_uploader_name FROM albums al LEFT JOIN LATERAL (SELECT i.id, i.stored_name,"
    " i.original_name, i.size_bytes, i.file_format, i.sha256, i.uploaded_at, i.width, i.height,"
    " i.source_format, i.quality, i.uploader_sub, i.uploader_name FROM album_images ai JOIN images i ON"
    " i.id = ai.image WHERE ai.album = al.id ORDER BY ai.image DESC LIMIT 1) c ON true WHERE al.name ILIKE"
    " {} ORDER BY al.name, al.id LIMIT {} OFFSET {}"
)
_ALBUM_TOTAL = "SELECT count(*) AS total FROM albums WHERE name ILIKE {}"
# Each article on the page with its first photo (album_images_article_position) and its count.
_ARTICLES = (
    "SELECT ar.id, ar.code, (SELECT count(*) FROM album_images ai WHERE ai.article = ar.id) AS images,"
    " c.id AS cover_id, c.stored_name AS cover_stored_name, c.original_name AS cover_original_name,"
    " c.size_bytes AS cover_size_bytes, c.file_format AS cover_file_format, c.sha256 AS cover_sha256,"
    " c.uploaded_at AS cover_uploaded_at, c.width AS cover_width, c.height AS cover_height,"
    " c.source_format AS cover_source_format, c.quality AS cover_quality, c.uploader_sub AS"
    " cover_uploader_sub, c.uploader_name AS cover_uploader_name FROM articles ar LEFT JOIN LATERAL"
    " (SELECT i.id, i.stored_name, i.original_name, i.size_bytes, i.file_format, i.sha256, i.uploaded_at,"
    " i.width, i.height, i.source_format, i.quality, i.uploader_sub, i.uploader_name FROM album_images ai"
    " JOIN images i ON i.id = ai.image WHERE ai.article = ar.id ORDER BY ai.position, ai.image LIMIT 1) c"
    " ON true WHERE ar.album = {} AND ar.code ILIKE {} ORDER BY ar.code, ar.id LIMIT {} OFFSET {}"
)
_ARTICLE_TOTAL = "SELECT count(*) AS total FROM articles WHERE album = {} AND code ILIKE {}"
# An article's photos in their order (album_images_article_position).
_GALLERY = (
    "SELECT i.id, i.stored_name, i.original_name, i.size_bytes, i.file_format, i.sha256, i.uploaded_at,"
    " i.width, i.height, i.source_format, i.quality, i.uploader_sub, i.uploader_name FROM album_images ai"
    " JOIN images i ON i.id = ai.image WHERE ai.article = {} ORDER BY ai.position, ai.image LIMIT {}"
    " OFFSET {}"
)


def path_part(name: str) -> str:
    """A name as one percent-encoded path segment."""
    return quote(name, safe="")


def album_url(album: str) -> str:
    return f"/albums/{path_part(album)}"


def article_url(album: str, article: str) -> str:
    return f"{album_url(album)}/{path_part(article)}"


def _pattern(search: str) -> str:
    """An ILIKE pattern that finds `search` anywhere, its own % and _ taken literally."""
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _cover(row: dict[str, Any]) -> StoredImage | None:
    if row.get("cover_id") is None:
        return None
    return StoredImage.from_row({name: row[f"cover_{name}"] for name in _IMAGE_COLUMNS})


@dataclass(frozen=True)
class Listing:
    """One page of a listing, shaped like the catalogue's page."""

    items: list[Any]
    page: int
    total_items: int
    page_size: int = GRID_PAGE_SIZE

    @property
    def total_pages(self) -> int:
        return max(1, math.ceil(self.total_items / self.page_size))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.total_pages


@dataclass(frozen=True)
class AlbumCard:
    name: str
    created_by_sub: str | None
    articles: int
    images: int
    cover: StoredImage | None


@dataclass(frozen=True)
class ArticleCard:
    code: str
    images: int
    cover: StoredImage | None


@dataclass(frozen=True)
class AlbumView:
    album: FoundAlbum
    articles: int
    images: int
    listing: Listing


@dataclass(frozen=True)
class ArticleView:
    album: FoundAlbum
    code: str
    images: int
    listing: Listing


class AlbumPages:
    """The queries behind the pages; knows nothing of HTTP."""

    def __init__(self, albums: AlbumService) -> None:
        self.albums = albums
        self.policy = albums.policy

    async def album_grid(self, search: str, page: int, principal: Principal) -> Listing:
        self.policy.require_browse(principal)
        pattern = _pattern(search)
        total = (await AlbumImage.raw(_ALBUM_TOTAL, pattern))[0]["total"]
        offset = (page - 1) * GRID_PAGE_SIZE
        rows = await AlbumImage.raw(_ALBUMS, pattern, GRID_PAGE_SIZE, offset) if offset < total else []
        cards = [
            AlbumCard(row["name"], row["created_by_sub"], row["articles"], row["images"], _cover(row)) for row in rows
        ]
        return Listing(cards, page, total)

    async def album(self, name: str, search: str, page: int, principal: Principal) -> AlbumView:
        self.policy.require_browse(principal)
        album = await self._album(name)
        pattern = _pattern(search)
        total = (await AlbumImage.raw(_ARTICLE_TOTAL, album.id, pattern))[0]["total"]
        offset = (page - 1) * GRID_PAGE_SIZE
        rows = await AlbumImage.raw(_ARTICLES, album.id, pattern, GRID_PAGE_SIZE, offset) if offset < total else []
        cards = [ArticleCard(row["code"], row["images"], _cover(row)) for row in rows]
        articles = await Article.count().where(Article.album == album.id)
        images = await AlbumImage.count().where(AlbumImage.album == album.id)
        return AlbumView(album, articles, images, Listing(cards, page, total))

    async def article(self, album_name: str, code: str, page: int, principal: Principal) -> ArticleView:
        self.policy.require_browse(principal)
        album = await self._album(album_name)
        code = catalogue_name(code)
        row = await Article.select(Article.id).where(Article.album == album.id, Article.code == code).first()
        if row is None:
            raise ArticleNotFound(album=album.name, article=code)
        total = await AlbumImage.count().where(AlbumImage.article == row["id"])
        offset = (page - 1) * GRID_PAGE_SIZE
        rows = await AlbumImage.raw(_GALLERY, row["id"], GRID_PAGE_SIZE, offset) if offset < total else []
        images = [StoredImage.from_row(image) for image in rows]
        return ArticleView(album, code, total, Listing(images, page, total))

    async def _album(self, name: str) -> FoundAlbum:
        album = await self.albums.find_album(name)
        if album is None:
            raise AlbumNotFound(name=name)
        return album


def _search(raw: str | None) -> str:
    return (raw or "").strip()[:LONGEST_SEARCH]


def _listing_json(listing: Listing, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "status": "success",
        "page": listing.page,
        "pagination": {"total_pages": listing.total_pages, "total_items": listing.total_items},
        "data": items,
    }


class AlbumPagesController(Controller):
    path = "/albums"

    @get(responses=answers(200, dict, "One page of albums", 400, 401, 403, 503))
    async def album_grid(
        self,
        request: Request,
        albums: AlbumService,
        images: ImageService,
        q: str | None = None,
        page: str | None = None,
    ) -> Response:
        principal = principal_of_request(request)
        search = _search(q)
        listing = await AlbumPages(albums).album_grid(search, page_number(page), principal)
        links = Links(request, images)
        return respond(
            request,
            page="albums/index.html",
            fragment="albums/_grid.html",
            context={"listing": listing, "q": search, "links": links, "album_url": album_url},
            json=lambda: _listing_json(
                listing,
                [
                    {
                        "album_name": card.name,
                        "articles": card.articles,
                        "images": card.images,
                        "url": links.site + album_url(card.name),
                        "cover_url": links.preview(card.cover, 480) if card.cover else None,
                    }
                    for card in listing.items
                ],
            ),
        )

    @get("/{album:str}", responses=answers(200, dict, "One page of an album's articles", 400, 401, 403, 404, 503))
    async def album(
        self,
        request: Request,
        albums: AlbumService,
        images: ImageService,
        album: str,
        q: str | None = None,
        page: str | None = None,
    ) -> Response:
        principal = principal_of_request(request)
        search = _search(q)
        view = await AlbumPages(albums).album(album, search, page_number(page), principal)
        links = Links(request, images)
        name = view.album.name
        return respond(
            request,
            page="albums/album.html",
            fragment="albums/_articles.html",
            context={
                "view": view,
                "q": search,
                "links": links,
                "album_url": album_url,
                "article_url": article_url,
                "may_manage": albums.policy.may_manage_album(principal, view.album.created_by_sub),
            },
            json=lambda: {
                **_listing_json(
                    view.listing,
                    [
                        {
                            "article_number": card.code,
                            "images": card.images,
                            "url": links.site + article_url(name, card.code),
                            "cover_url": links.preview(card.cover, 480) if card.cover else None,
                        }
                        for card in view.listing.items
                    ],
                ),
                "album_name": name,
                "articles": view.articles,
                "images": view.images,
            },
        )

    @get(
        "/{album:str}/{article:str}",
        responses=answers(200, dict, "One page of an article's images", 400, 401, 403, 404, 503),
    )
    async def article(
        self,
        request: Request,
        albums: AlbumService,
        images: ImageService,
        album: str,
        article: str,
        page: str | None = None,
    ) -> Response:
        principal = principal_of_request(request)
        view = await AlbumPages(albums).article(album, article, page_number(page), principal)
        links = Links(request, images)
        return respond(
            request,
            page="albums/article.html",
            fragment="albums/_gallery.html",
            context={
                "view": view,
                "links": links,
                "album_url": album_url,
                "article_url": article_url,
                "may_manage": albums.policy.may_manage_album(principal, view.album.created_by_sub),
            },
            json=lambda: {
                **_listing_json(
                    view.listing,
                    [
                        {
                            "id": image.id,
                            "filename": image.stored_name,
                            "original_name": image.original_name,
                            "public_link": links.image(image),
                            "preview_url": links.preview(image, 480),
                            "page_url": links.page(image),
                        }
                        for image in view.listing.items
                    ],
                ),
                "album_name": view.album.name,
                "article_number": view.code,
                "images": view.images,
            },
        )

    @route(
        "/{album:str}",
        http_method=["DELETE", "POST"],
        status_code=200,
        responses=answers(200, DeleteAnswer, "Deleted with its images", 400, 401, 403, 404, 503),
    )
    async def delete_album(self, request: Request, albums: AlbumService, album: str) -> Response:
        """The album page's Delete (htmx's DELETE, or a form's POST without JavaScript)."""
        count = await albums.delete_album(album, principal_of_request(request))
        return _deleted(request, "/albums", say(request, ALBUM_DELETED, name=album, count=count))

    @route(
        "/{album:str}/{article:str}",
        http_method=["DELETE", "POST"],
        status_code=200,
        responses=answers(200, DeleteAnswer, "Deleted with its images", 400, 401, 403, 404, 503),
    )
    async def delete_article(self, request: Request, albums: AlbumService, album: str, article: str) -> Response:
        count = await albums.delete_article(album, article, principal_of_request(request))
        message = say(request, ARTICLE_DELETED, article=article, album=album, count=count)
        return _deleted(request, album_url(catalogue_name(album)), message)


def _deleted(request: Request, back: str, message: str) -> Response:
    """htmx goes to the page above (a whole new page); a form is sent there; JSON says so."""
    kind = representation(request)
    if kind == "fragment":
        return Response("", headers={"HX-Redirect": back, "Vary": "HX-Request, Accept"})
    if kind == "page":
        return Redirect(back, status_code=303)
    return Response({"status": "success", "message": message})
