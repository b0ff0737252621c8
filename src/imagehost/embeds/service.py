"""What each embed shows: one image, a page of an album's or an article's images, the newest
images. Knows nothing of HTTP.

The rules and the lookups are the existing ones (ImageService.find_by_name and .some,
AlbumService.count_album and .count_article: the browse policy, the 404s, the kept counts); the
only queries of its own pick one page of image ids at the embed's own `limit`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from imagehost import __version__
from imagehost.accounts.principal import Principal
from imagehost.albums.names import catalogue_name
from imagehost.albums.service import AlbumService
from imagehost.albums.tables import AlbumImage
from imagehost.images.service import ImageService, StoredImage
from imagehost.images.tables import Image
from imagehost.paging import Paged

DEFAULT_LIMIT = 12
LARGEST_LIMIT = 48


@dataclass(frozen=True)
class Gallery(Paged):
    """One page of thumbnails: of an album, of one of its articles, or of the newest images."""

    images: list[StoredImage]
    page: int
    limit: int
    total_items: int
    album: str | None = None
    article: str | None = None

    @property
    def per_page(self) -> int:
        return self.limit


def fingerprint(*shown: object) -> str:
    """An entity tag for what an answer shows (ids, names, sizes, counts, its language and form):
    the same inputs give the same tag, and the app's version is part of it (a new template)."""
    digest = hashlib.sha256(repr((__version__, *shown)).encode()).hexdigest()
    return f'"{digest[:32]}"'


def image_fingerprint(image: StoredImage) -> tuple[object, ...]:
    return (image.id, image.stored_name, image.original_name, image.width, image.height)


def gallery_fingerprint(gallery: Gallery) -> tuple[object, ...]:
    return (
        gallery.album,
        gallery.article,
        gallery.page,
        gallery.limit,
        gallery.total_items,
        *(image_fingerprint(image) for image in gallery.images),
    )


class Embeds:
    def __init__(self, images: ImageService, albums: AlbumService) -> None:
        self.images = images
        self.albums = albums
        self.policy = images.policy

    async def image(self, stored_name: str, principal: Principal) -> StoredImage:
        return await self.images.find_by_name(stored_name, principal)

    async def album(self, album_name: str, page: int, limit: int, principal: Principal) -> Gallery:
        """The album's images, newest first (as the catalogue filtered by the album shows them)."""
        total = await self.albums.count_album(album_name, principal)  # the browse rule and the 404
        name = catalogue_name(album_name)
        ids = await (
            AlbumImage.select(AlbumImage.image)
            .where(AlbumImage.album.name == name)
            .order_by(AlbumImage.image, ascending=False)
            .limit(limit)
            .offset((page - 1) * limit)
        )
        return Gallery(await self._in_order(ids), page, limit, total, album=name)

    async def article(self, album_name: str, code: str, page: int, limit: int, principal: Principal) -> Gallery:
        """The article's images in their photo order (as its album page shows them)."""
        total = await self.albums.count_article(album_name, code, principal)
        name, code = catalogue_name(album_name), catalogue_name(code)
        ids = await (
            AlbumImage.select(AlbumImage.image)
            .where(AlbumImage.album.name == name, AlbumImage.article.code == code)
            .order_by(AlbumImage.position, AlbumImage.image)
            .limit(limit)
            .offset((page - 1) * limit)
        )
        return Gallery(await self._in_order(ids), page, limit, total, album=name, article=code)

    async def latest(self, limit: int, principal: Principal) -> Gallery:
        """The newest images of the catalogue."""
        self.policy.require_browse(principal)
        ids = (
            await Image.select(Image.id.as_alias("image"))
            .order_by(Image.uploaded_at, Image.id, ascending=False)
            .limit(limit)
        )
        found = await self._in_order(ids)
        return Gallery(found, 1, limit, len(found))

    async def _in_order(self, rows: list[dict[str, int]]) -> list[StoredImage]:
        """The images of these rows (`image`: an id), in the rows' order."""
        ids = [row["image"] for row in rows]
        by_id = {image.id: image for image in await self.images.some(ids)}
        return [by_id[image_id] for image_id in ids if image_id in by_id]
