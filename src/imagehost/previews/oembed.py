"""oEmbed (oembed.com): what another site learns about one of our links to embed it.

Every value comes from the database (the image's row, the album's name): nothing of the query but
the URL's path and the size limits is used, so nobody can mint answers on this domain (Zipline
echoes a title from the query string). An image page or direct link is a `photo`: the largest
stored version that fits `maxwidth` x `maxheight` (the smallest when none does), with its real
size. An album or article is `rich`: the iframe of its embed page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from imagehost.accounts.principal import Principal
from imagehost.albums.service import AlbumService
from imagehost.embeds.codes import GALLERY_HEIGHT, GALLERY_WIDTH, album_embed_url
from imagehost.errors import NothingToEmbed, OEmbedFormatUnsupported
from imagehost.images.links import Links
from imagehost.images.service import ImageService
from imagehost.images.snippets import iframe_code
from imagehost.images.storage import is_stored_name

RICH_WIDTH, RICH_HEIGHT = GALLERY_WIDTH, GALLERY_HEIGHT  # the embed codes' iframe, unless asked for less
CACHE_AGE = 3600


@dataclass(frozen=True)
class ImageTarget:
    stored_name: str


@dataclass(frozen=True)
class AlbumTarget:
    album: str
    article: str | None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def target_of(url: str, our_bases: list[str]) -> ImageTarget | AlbumTarget:
    """What a URL on one of our bases points at; NothingToEmbed for anything else."""
    parts = urlsplit(url.strip())
    if not parts.scheme or (parts.scheme.lower(), parts.netloc.lower()) not in {_origin(b) for b in our_bases}:
        raise NothingToEmbed(url=url[:200])
    segments = [unquote(segment) for segment in parts.path.split("/")[1:]]
    if segments and segments[-1] == "":
        segments = segments[:-1]
    if len(segments) == 2 and segments[0] in {"i", "images"} and is_stored_name(segments[1]):
        return ImageTarget(segments[1])
    if (
        len(segments) == 4
        and segments[:2] == ["images", "thumbs"]
        and segments[3].endswith(".webp")
        and is_stored_name(segments[3][: -len(".webp")])
    ):
        return ImageTarget(segments[3][: -len(".webp")])
    if len(segments) in {2, 3} and segments[0] == "albums" and all(segments[1:]):
        return AlbumTarget(segments[1], segments[2] if len(segments) == 3 else None)
    raise NothingToEmbed(url=url[:200])


class OEmbed:
    def __init__(self, images: ImageService, albums: AlbumService) -> None:
        self.images = images
        self.albums = albums

    async def answer(
        self,
        url: str,
        max_width: int | None,
        max_height: int | None,
        answer_format: str,
        principal: Principal,
        links: Links,
        site_name: str,
    ) -> dict[str, Any]:
        if answer_format != "json":
            raise OEmbedFormatUnsupported(format=answer_format[:20])
        self.images.policy.require_browse(principal)
        bases = [links.site, links.request_base, self.images.settings.images_base_url or links.site]
        target = target_of(url, bases)
        common = {
            "version": "1.0",
            "provider_name": site_name,
            "provider_url": f"{links.site}/",
            "cache_age": CACHE_AGE,
        }
        if isinstance(target, ImageTarget):
            image = await self.images.find_by_name(target.stored_name, principal)
            versions = links.versions(image)
            if not versions:
                raise NothingToEmbed(url=url[:200])
            chosen = links.largest_within(image, max_width, max_height) or versions[0]
            smallest = versions[0]
            return {
                **common,
                "type": "photo",
                "title": image.original_name,
                "url": chosen.url,
                "width": chosen.width,
                "height": chosen.height,
                "thumbnail_url": smallest.url,
                "thumbnail_width": smallest.width,
                "thumbnail_height": smallest.height,
            }
        if target.article is None:
            await self.albums.count_album(target.album, principal)  # 404 for an unknown album
        else:
            await self.albums.count_article(target.album, target.article, principal)
        width = min(RICH_WIDTH, max_width or RICH_WIDTH)
        height = min(RICH_HEIGHT, max_height or RICH_HEIGHT)
        title = f"{target.album} / {target.article}" if target.article else target.album
        embed = album_embed_url(links, target.album, target.article)
        return {
            **common,
            "type": "rich",
            "title": title,
            "html": iframe_code(embed, title, width, height),
            "width": width,
            "height": height,
        }
