"""The copy-paste codes offered for an image (HTML, Markdown, BBCode), built in one place.

Whoever pastes one of these into their own page trusts us with it, and the original name is the
uploader's text. So each code escapes the name for its own language here; the template then
escapes the whole code once more for the attribute it sits in (Jinja's autoescape). Later codes
(iframes, htmx embeds) belong here too.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from urllib.parse import quote

# Markdown has no escape that every renderer honours (backslash escapes are CommonMark's), so the
# characters that open or close a link, an image, an autolink or code are dropped from alt text.
MARKDOWN_ALT_UNSAFE = str.maketrans("", "", "[]()<>`\\!*_")
# URLs come from settings and stored names; still, nothing in them may end the code early.
URL_SAFE = ":/?#@&=+$,;%"


@dataclass(frozen=True)
class Snippet:
    kind: str  # html, markdown, bbcode: also the element id suffix on the page
    label: str
    code: str


def _plain(text: str) -> str:
    """One line of text: control characters (newlines included) become spaces."""
    return " ".join("".join(" " if ord(char) < 32 or ord(char) == 127 else char for char in text).split())


def safe_url(url: str) -> str:
    """The URL with anything outside the characters a URL needs percent-encoded (quotes, brackets,
    parentheses, spaces and angle brackets included)."""
    return quote(url, safe=URL_SAFE)


def html_code(url: str, alt: str) -> str:
    return f'<img src="{html.escape(safe_url(url), quote=True)}" alt="{html.escape(_plain(alt), quote=True)}">'


def markdown_code(url: str, alt: str) -> str:
    return f"![{_plain(alt.translate(MARKDOWN_ALT_UNSAFE))}]({safe_url(url)})"


def bbcode_code(url: str) -> str:
    return f"[img]{safe_url(url)}[/img]"


def image_snippets(url: str, original_name: str) -> list[Snippet]:
    """The codes for one image, in the order the pages show them (after the direct link)."""
    return [
        Snippet("markdown", "Markdown", markdown_code(url, original_name)),
        Snippet("html", "HTML", html_code(url, original_name)),
        Snippet("bbcode", "BBCode", bbcode_code(url)),
    ]


# --- Embed codes: an iframe of an embed page, or an htmx include of its fragment ------------------

# htmx 2 sends requests to its own page's origin only; a page that includes our fragment says so once.
HTMX_CONFIG_CODE = """<meta name="htmx-config" content='{"selfRequestsOnly":false}'>"""


def iframe_code(src: str, title: str, width: int, height: int) -> str:
    """An iframe of an embed page: the title is the uploader's text, as plain attribute text."""
    return (
        f'<iframe src="{html.escape(safe_url(src), quote=True)}" width="{int(width)}" height="{int(height)}"'
        f' title="{html.escape(_plain(title), quote=True)}" loading="lazy" style="border:0;max-width:100%"></iframe>'
    )


def htmx_code(src: str) -> str:
    """An element that htmx on the host page fills with the embed's fragment once it loads."""
    return f'<div hx-get="{html.escape(safe_url(src), quote=True)}" hx-trigger="load"></div>'


def embed_snippets(src: str, title: str, width: int, height: int) -> list[Snippet]:
    """The codes for one embed page, in the order the pages show them."""
    return [
        Snippet("iframe", "iframe", iframe_code(src, title, width, height)),
        Snippet("htmx", "htmx", htmx_code(src)),
        Snippet("htmx-config", "htmx config", HTMX_CONFIG_CODE),
    ]
