"""What a shared link shows in a chat or forum: OpenGraph and Twitter card tags.

Built from the database only (the image's row, the album's name and cover); templates/previews/
_tags.html writes them, autoescaped. With PRIVATE_IMAGES there are none: a preview would put the
picture where the catalogue's rules do not reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from imagehost.images.links import Links, Version
from imagehost.images.service import StoredImage

# og:image: the largest version up to this on its long side (the original when smaller).
PREVIEW_SIDE = 1280


@dataclass(frozen=True)
class Preview:
    title: str
    page_url: str  # og:url, and the url the oEmbed link asks about
    kind: str  # og:type
    image: Version | None
    image_alt: str
    oembed_url: str

    @property
    def card(self) -> str:
        return "summary_large_image" if self.image else "summary"


def preview_image(image: StoredImage, links: Links) -> Version | None:
    """The largest version whose long side is at most PREVIEW_SIDE, else the smallest there is."""
    versions = links.versions(image)
    fitting = [version for version in versions if max(version.width, version.height) <= PREVIEW_SIDE]
    return fitting[-1] if fitting else (versions[0] if versions else None)


def oembed_link(links: Links, page_url: str) -> str:
    return f"{links.site}/oembed?{urlencode({'url': page_url, 'format': 'json'})}"


def image_preview(image: StoredImage, links: Links, private: bool) -> Preview | None:
    if private:
        return None
    page = links.page(image)
    return Preview(
        image.original_name, page, "website", preview_image(image, links), image.original_name, oembed_link(links, page)
    )


def album_page_url(links: Links, album: str, article: str | None = None) -> str:
    path = f"/albums/{quote(album, safe='')}" + (f"/{quote(article, safe='')}" if article else "")
    return links.site + path


def album_preview(
    album: str, article: str | None, cover: StoredImage | None, links: Links, private: bool
) -> Preview | None:
    """An album's or article's page: titled "album / article", pictured by its cover."""
    if private:
        return None
    page = album_page_url(links, album, article)
    title = f"{album} / {article}" if article else album
    picture = preview_image(cover, links) if cover else None
    return Preview(title, page, "website", picture, cover.original_name if cover else title, oembed_link(links, page))
