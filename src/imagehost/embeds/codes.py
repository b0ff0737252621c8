"""Where an embed lives and the codes that show it elsewhere (the image, album and article pages
offer them, with a live preview). The codes themselves are built and escaped in images/snippets.py."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from imagehost.albums.pages import album_url, article_url
from imagehost.errors import N_
from imagehost.images.links import Links
from imagehost.images.service import StoredImage
from imagehost.images.snippets import Snippet, embed_snippets

CARD_WIDTH = 480  # the image card's picture, at most (a 480 px thumbnail: embeds/_image.html)
CARD_CAPTION = 72  # the name and the link below it
GALLERY_WIDTH, GALLERY_HEIGHT = 600, 400
LABELS = {"iframe": "iframe", "htmx": "htmx", "htmx-config": N_("htmx config")}
# No markup in a message: Jinja marks translated text safe.
HOW_TO = N_(
    "Paste the iframe code into the other site's page. Or, on a page that loads htmx 2, paste the htmx"
    " code, and the htmx config once in the head of that page."
)


def image_embed_url(links: Links, image: StoredImage) -> str:
    return f"{links.site}/embed/i/{image.stored_name}"


def album_embed_url(links: Links, album: str, article: str | None = None) -> str:
    path = f"{links.site}/embed/album/{quote(album, safe='')}"
    return f"{path}/{quote(article, safe='')}" if article is not None else path


def album_page_path(album: str, article: str | None = None) -> str:
    """The album's (or article's) own page on this site, which a gallery links to."""
    return article_url(album, article) if article is not None else album_url(album)


@dataclass(frozen=True)
class EmbedCodes:
    url: str  # the embed page, absolute
    title: str
    width: int
    height: int
    snippets: list[Snippet]

    how_to: str = HOW_TO

    @staticmethod
    def label(kind: str) -> str:
        return LABELS[kind]


def card_size(image: StoredImage) -> tuple[int, int]:
    """The iframe that holds the card without scrolling: the picture at most CARD_WIDTH wide."""
    if not image.width or not image.height:
        return CARD_WIDTH, CARD_WIDTH + CARD_CAPTION
    scale = min(1.0, CARD_WIDTH / image.width)
    return max(1, round(image.width * scale)), max(1, round(image.height * scale)) + CARD_CAPTION


def embed_codes(links: Links, image: StoredImage | None = None, album: str = "", article: str = "") -> EmbedCodes:
    """The codes of an image's card (`image`), or of an album's (`album`) or article's gallery."""
    if image is not None:
        url, title = image_embed_url(links, image), image.original_name
        width, height = card_size(image)
    else:
        url = album_embed_url(links, album, article or None)
        title = f"{album} / {article}" if article else album
        width, height = GALLERY_WIDTH, GALLERY_HEIGHT
    return EmbedCodes(url, title, width, height, embed_snippets(url, title, width, height))
