"""The album pages: /albums (a grid with a search), an album's articles, an article's gallery.

The listings read only indexes: a page of albums or articles (by name, LIMIT/OFFSET), and for
each item on the page its cover (the newest image, or the first photo) and its counts, kept by
triggers on the album's and article's rows (migrations/albums/albums_0003_image_counts.py).
Deleting goes through AlbumService (the crash-safe image delete).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post, route
from litestar.datastructures import UploadFile
from litestar.response import Redirect

from imagehost.accounts.identity import principal_of_request
from imagehost.accounts.principal import Principal
from imagehost.albums.controllers import (
    ALBUM_DELETED,
    ALBUM_RENAMED,
    ARTICLE_DELETED,
    ARTICLE_RENAMED,
    MANAGE_ERRORS,
    ArticleAnswer,
    MovedAnswer,
    RenamedAlbumAnswer,
    moved_json,
    say,
    with_conflict,
)
from imagehost.albums.names import catalogue_name
from imagehost.albums.service import AlbumService, FoundAlbum
from imagehost.albums.tables import AlbumImage, Article
from imagehost.api.openapi import DeleteAnswer, answers, form, text
from imagehost.errors import N_, ArticleNotFound, InvalidParameter, MissingParameter
from imagehost.images.links import Links
from imagehost.images.service import ImageService, StoredImage
from imagehost.images.tables import LARGEST_IMAGE_ID
from imagehost.paging import Paged
from imagehost.previews.tags import album_preview
from imagehost.web.query import page_number, whole_number
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

# Each album on the page with its newest image (album_images_album_newest) and its kept counts. The
# page is chosen first, then its covers read: a generic plan (ILIKE $1 guessed to match few rows)
# would otherwise read the cover of every album before sorting.
_ALBUMS = (
    "SELECT al.id, al.name, al.created_by_sub, al.article_count AS articles, al.image_count AS images, c.id AS"
    " cover_id, c.stored_name AS cover_stored_name, c.original_name AS cover_original_name, c.size_bytes"
    " AS cover_size_bytes, c.file_format AS cover_file_format, c.sha256 AS cover_sha256, c.uploaded_at AS"
    " cover_uploaded_at, c.width AS cover_width, c.height AS cover_height, c.source_format AS"
    " cover_source_format, c.quality AS cover_quality, c.uploader_sub AS cover_uploader_sub,"
    " c.uploader_name AS cover_uploader_name FROM (SELECT id, name, created_by_sub, article_count, image_count"
    " FROM albums WHERE name ILIKE {} ORDER BY name, id LIMIT {} OFFSET {}) al LEFT JOIN LATERAL (SELECT i.id,"
    " i.stored_name,"
    " i.original_name, i.size_bytes, i.file_format, i.sha256, i.uploaded_at, i.width, i.height,"
    " i.source_format, i.quality, i.uploader_sub, i.uploader_name FROM album_images ai JOIN images i ON"
    " i.id = ai.image WHERE ai.album = al.id ORDER BY ai.image DESC LIMIT 1) c ON true ORDER BY al.name, al.id"
)
_ALBUM_TOTAL = "SELECT count(*) AS total FROM albums WHERE name ILIKE {}"
# Each article on the page (chosen first, as for albums) with its first photo
# (album_images_article_position) and its kept count.
_ARTICLES = (
    "SELECT ar.id, ar.code, ar.image_count AS images,"
    " c.id AS cover_id, c.stored_name AS cover_stored_name, c.original_name AS cover_original_name,"
    " c.size_bytes AS cover_size_bytes, c.file_format AS cover_file_format, c.sha256 AS cover_sha256,"
    " c.uploaded_at AS cover_uploaded_at, c.width AS cover_width, c.height AS cover_height,"
    " c.source_format AS cover_source_format, c.quality AS cover_quality, c.uploader_sub AS"
    " cover_uploader_sub, c.uploader_name AS cover_uploader_name FROM (SELECT id, code, image_count FROM"
    " articles WHERE album = {} AND code ILIKE {} ORDER BY code, id LIMIT {} OFFSET {}) ar LEFT JOIN LATERAL"
    " (SELECT i.id, i.stored_name, i.original_name, i.size_bytes, i.file_format, i.sha256, i.uploaded_at,"
    " i.width, i.height, i.source_format, i.quality, i.uploader_sub, i.uploader_name FROM album_images ai"
    " JOIN images i ON i.id = ai.image WHERE ai.article = ar.id ORDER BY ai.position, ai.image LIMIT 1) c"
    " ON true ORDER BY ar.code, ar.id"
)
_ARTICLE_TOTAL = "SELECT count(*) AS total FROM articles WHERE album = {} AND code ILIKE {}"
# An article's photos in their order (album_images_article_position).
_GALLERY = (
    "SELECT i.id, i.stored_name, i.original_name, i.size_bytes, i.file_format, i.sha256, i.uploaded_at,"
    " i.width, i.height, i.source_format, i.quality, i.uploader_sub, i.uploader_name FROM album_images ai"
    " JOIN images i ON i.id = ai.image WHERE ai.article = {} ORDER BY ai.position, ai.image LIMIT {}"
    " OFFSET {}"
)
# The album's article codes a move form offers (a datalist: the first ones by code are enough).
_ARTICLE_CHOICES = "SELECT code FROM articles WHERE album = {} ORDER BY code LIMIT {}"
ARTICLE_CHOICES = 200
IMAGE_SHIFTED = N_("The photo order of the article {article} is saved.")


def path_part(name: str) -> str:
    """A name as one percent-encoded path segment."""
    return quote(name, safe="")


def album_url(album: str) -> str:
    return f"/albums/{path_part(album)}"


def article_url(album: str, article: str) -> str:
    return f"{album_url(album)}/{path_part(article)}"


def manage_url(action: str, *names: str) -> str:
    """A manage form's target, beside /albums: /reorder/<album>/<article>, /rename-album/<album>."""
    return "/".join(["", action, *map(path_part, names)])


def _pattern(search: str) -> str:
    """An ILIKE pattern that finds `search` anywhere, its own % and _ taken literally."""
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _cover(row: dict[str, Any]) -> StoredImage | None:
    if row.get("cover_id") is None:
        return None
    return StoredImage.from_row({name: row[f"cover_{name}"] for name in _IMAGE_COLUMNS})


@dataclass(frozen=True)
class Listing(Paged):
    """One page of a listing, shaped like the catalogue's page."""

    items: list[Any]
    page: int
    total_items: int
    page_size: int = GRID_PAGE_SIZE

    @property
    def per_page(self) -> int:
        return self.page_size


def first_cover(items: list[Any]) -> StoredImage | None:
    """The link preview's picture: the first photo shown (an article page) or the first card's cover."""
    for item in items:
        found = item if isinstance(item, StoredImage) else getattr(item, "cover", None)
        if found is not None:
            return found
    return None


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
        counted = await self.albums.counted_album(name)
        album = counted.album
        pattern = _pattern(search)
        total = (await AlbumImage.raw(_ARTICLE_TOTAL, album.id, pattern))[0]["total"]
        offset = (page - 1) * GRID_PAGE_SIZE
        rows = await AlbumImage.raw(_ARTICLES, album.id, pattern, GRID_PAGE_SIZE, offset) if offset < total else []
        cards = [ArticleCard(row["code"], row["images"], _cover(row)) for row in rows]
        return AlbumView(album, counted.articles, counted.images, Listing(cards, page, total))

    async def article(
        self, album_name: str, code: str, page: int, principal: Principal, *, at_most_last: bool = False
    ) -> ArticleView:
        """One page of an article's gallery; `at_most_last`: a page past the last is the last (after a move
        took the last photo of the last page away)."""
        self.policy.require_browse(principal)
        album = await self.albums.album(album_name)
        code = catalogue_name(code)
        row = await (
            Article.select(Article.id, Article.image_count)
            .where(Article.album == album.id, Article.code == code)
            .first()
        )
        if row is None:
            raise ArticleNotFound(album=album.name, article=code)
        total = row["image_count"]
        if at_most_last:
            page = min(page, max(1, math.ceil(total / GRID_PAGE_SIZE)))
        offset = (page - 1) * GRID_PAGE_SIZE
        rows = await AlbumImage.raw(_GALLERY, row["id"], GRID_PAGE_SIZE, offset) if offset < total else []
        images = [StoredImage.from_row(image) for image in rows]
        return ArticleView(album, code, total, Listing(images, page, total))

    async def article_choices(self, album: FoundAlbum) -> list[str]:
        rows = await Article.raw(_ARTICLE_CHOICES, album.id, ARTICLE_CHOICES)
        return [row["code"] for row in rows]


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
        delete: str | None = None,
    ) -> Response:
        """`?delete=confirm`: the page asks whether to delete (the Delete button without JavaScript)."""
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
                "manage_url": manage_url,
                "confirm_delete": delete == "confirm",
                "preview": album_preview(
                    view.album.name, None, first_cover(view.listing.items), links, images.settings.private_images
                ),
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
        delete: str | None = None,
    ) -> Response:
        """`?delete=confirm`: the page asks whether to delete (the Delete button without JavaScript)."""
        principal = principal_of_request(request)
        view = await AlbumPages(albums).article(album, article, page_number(page), principal)
        return await _gallery_response(request, albums, images, view, principal, confirm_delete=delete == "confirm")

    @route(
        "/{album:str}",
        http_method=["DELETE", "POST"],
        status_code=200,
        responses=answers(200, DeleteAnswer, "Deleted with its images", 400, 401, 403, 404, 503),
    )
    async def delete_album(self, request: Request, albums: AlbumService, album: str) -> Response:
        """The album page's Delete (htmx's DELETE, or a form's POST without JavaScript)."""
        count = await albums.delete_album(album, principal_of_request(request))
        return _went(
            request, "/albums", {"status": "success", "message": say(request, ALBUM_DELETED, name=album, count=count)}
        )

    @route(
        "/{album:str}/{article:str}",
        http_method=["DELETE", "POST"],
        status_code=200,
        responses=answers(200, DeleteAnswer, "Deleted with its images", 400, 401, 403, 404, 503),
    )
    async def delete_article(self, request: Request, albums: AlbumService, album: str, article: str) -> Response:
        count = await albums.delete_article(album, article, principal_of_request(request))
        message = say(request, ARTICLE_DELETED, article=article, album=album, count=count)
        return _went(request, album_url(catalogue_name(album)), {"status": "success", "message": message})


async def _gallery_response(
    request: Request,
    albums: AlbumService,
    images: ImageService,
    view: ArticleView,
    principal: Principal,
    *,
    confirm_delete: bool = False,
    counts_changed: bool = False,
    headers: dict[str, str] | None = None,
) -> Response:
    """The article page, or its gallery fragment (with the counts out of band when they changed)."""
    links = Links(request, images)
    may_manage = albums.policy.may_manage_album(principal, view.album.created_by_sub)
    pages = AlbumPages(albums)
    return respond(
        request,
        page="albums/article.html",
        fragment="albums/_gallery.html",
        headers=headers,
        context={
            "view": view,
            "links": links,
            "album_url": album_url,
            "article_url": article_url,
            "may_manage": may_manage,
            "manage_url": manage_url,
            # The move form's datalist is on the page, not in the gallery fragment.
            "article_codes": (
                await pages.article_choices(view.album) if may_manage and representation(request) == "page" else []
            ),
            "confirm_delete": confirm_delete,
            "counts_changed": counts_changed,
            "preview": album_preview(
                view.album.name, view.code, first_cover(view.listing.items), links, images.settings.private_images
            ),
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


def _went(request: Request, url: str, body: dict[str, Any]) -> Response:
    """After a change that moves the page elsewhere (a delete, a new name, an article left empty):
    htmx loads the new page, a form is sent there, JSON says what was done."""
    kind = representation(request)
    if kind == "fragment":
        return Response("", headers={"HX-Redirect": url, "Vary": "HX-Request, Accept"})
    if kind == "page":
        return Redirect(url, status_code=303)
    return Response(body, headers={"Vary": "HX-Request, Accept"})


def _form_text(values: Any, name: str) -> str:
    value = values.get(name)
    if value is None or isinstance(value, UploadFile):
        raise MissingParameter(name=name)
    return str(value)


def _form_image_id(values: Any) -> int:
    return whole_number("image_id", _form_text(values, "image_id"), low=1, high=LARGEST_IMAGE_ID, default=0)


_NEW_NAME = text("The new name (NFC, 1 to 200 characters, no / or control characters)")
CONFLICT = "The new name or code is taken, or the article already holds the same file"


class AlbumManagePagesController(Controller):
    """The forms of the album pages for admins and an album's creator: rename, reorder, move.

    Each works as a plain form (POST, then 303 back to the page) and through htmx (the gallery
    fragment, or HX-Redirect when the page's URL changes). Cross-site POSTs are refused before any
    handler (web/guard.py), as for the page deletes. Paths beside /albums, not below it: any name
    below /albums/<album> is an article's.
    """

    @post(
        "/rename-album/{album:str}",
        status_code=200,
        operation_class=form(new_name=_NEW_NAME),
        responses=with_conflict(
            answers(200, RenamedAlbumAnswer, "Renamed (a form is sent to the album's new page)", *MANAGE_ERRORS),
            CONFLICT,
        ),
    )
    async def rename_album(self, request: Request, albums: AlbumService, album: str) -> Response:
        values = await request.form()
        name = await albums.rename_album(album, _form_text(values, "new_name"), principal_of_request(request))
        message = say(request, ALBUM_RENAMED, old=album, new=name)
        return _went(request, album_url(name), {"status": "success", "message": message, "album_name": name})

    @post(
        "/rename-article/{album:str}/{article:str}",
        status_code=200,
        operation_class=form(new_name=_NEW_NAME),
        responses=with_conflict(
            answers(200, ArticleAnswer, "Renamed (a form is sent to the article's new page)", *MANAGE_ERRORS), CONFLICT
        ),
    )
    async def rename_article(self, request: Request, albums: AlbumService, album: str, article: str) -> Response:
        values = await request.form()
        code = await albums.rename_article(
            album, article, _form_text(values, "new_name"), principal_of_request(request)
        )
        album = catalogue_name(album)
        message = say(request, ARTICLE_RENAMED, old=catalogue_name(article), album=album, new=code)
        body = {"status": "success", "message": message, "album_name": album, "article_number": code}
        return _went(request, article_url(album, code), body)

    @post(
        "/reorder/{album:str}/{article:str}",
        status_code=200,
        operation_class=form(
            image_id=text("The image to move"),
            direction=text("Earlier or later by one place", "earlier", "later"),
        ),
        responses=answers(200, ArticleAnswer, "Moved by one place: the gallery's page where it now is", *MANAGE_ERRORS),
    )
    async def reorder(
        self, request: Request, albums: AlbumService, images: ImageService, album: str, article: str
    ) -> Response:
        """The gallery's "earlier" and "later" buttons: one image one place along the photo order."""
        values = await request.form()
        image_id = _form_image_id(values)
        direction = _form_text(values, "direction")
        if direction not in {"earlier", "later"}:
            raise InvalidParameter(field="direction", reason="earlier or later")
        principal = principal_of_request(request)
        place = await albums.shift_image(album, article, image_id, -1 if direction == "earlier" else 1, principal)
        page = place // GRID_PAGE_SIZE + 1  # the gallery's page that shows it now
        kind = representation(request)
        if kind == "page":
            return Redirect(
                f"{article_url(catalogue_name(album), catalogue_name(article))}?page={page}#image-{image_id}",
                status_code=303,
            )
        view = await AlbumPages(albums).article(album, article, page, principal)
        message = say(request, IMAGE_SHIFTED, article=view.code)
        if kind == "json":
            body = {"status": "success", "message": message, "album_name": view.album.name, "article_number": view.code}
            return Response(body, headers={"Vary": "HX-Request, Accept"})
        push = {"HX-Push-Url": f"{article_url(view.album.name, view.code)}?page={page}"}
        return await _gallery_response(request, albums, images, view, principal, headers=push)

    @post(
        "/move-image/{album:str}/{article:str}",
        status_code=200,
        operation_class=form(
            image_id=text("The image to move"),
            article_name=text("The article of this album it goes to (created when missing)"),
        ),
        responses=with_conflict(answers(200, MovedAnswer, "Moved: the gallery without it", *MANAGE_ERRORS), CONFLICT),
    )
    async def move_image(
        self, request: Request, albums: AlbumService, images: ImageService, album: str, article: str
    ) -> Response:
        """The gallery's "Move to the article" form: one image of this article to another of the album."""
        values = await request.form()
        image_id = _form_image_id(values)
        target = _form_text(values, "article_name")
        principal = principal_of_request(request)
        moved = await albums.move_images([image_id], album, target, principal)
        here = (moved.album_name, catalogue_name(article))
        if here in moved.emptied:  # the article is gone: its album's page
            return _went(request, album_url(moved.album_name), moved_json(request, moved))
        page = page_number(_form_text(values, "page") if values.get("page") else None)
        view = await AlbumPages(albums).article(album, article, page, principal, at_most_last=True)
        if representation(request) != "fragment":
            return _went(request, f"{article_url(*here)}?page={view.listing.page}", moved_json(request, moved))
        return await _gallery_response(request, albums, images, view, principal, counts_changed=True)
