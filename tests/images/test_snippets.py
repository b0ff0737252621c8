"""The copy-paste codes: whatever the original name holds, a pasted code carries none of its markup."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from imagehost.images.snippets import bbcode_code, html_code, markdown_code
from tests.conftest import HTML, png_bytes, upload

HOSTILE_NAMES = [
    'cat" onerror="alert(1)" x=".png',
    "cat' onerror='alert(1)' x='.png",
    "<script>alert(1)</script>.png",
    "x](javascript:alert(1)) ![y.png",
    "a[/img][url=javascript:alert(1)]b[img].png",
    "line\nbreak\r\n<b>.png",
    "back\\slash`code`&amp;.png",
]


class Tags(HTMLParser):
    """Every start tag with its attributes, as a browser would read them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(markup: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(markup)
    parser.close()
    return parser.tags


def snippet_values(page: str) -> dict[str, str]:
    """The value of each snippet input, decoded as the browser decodes the attribute (what Copy copies)."""
    return {
        attrs["id"]: attrs["value"] or ""
        for tag, attrs in tags_of(page)
        if tag == "input" and (attrs.get("id") or "").startswith(("snippet-", "direct-link"))
    }


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_the_html_code_is_one_img_with_the_name_as_plain_alt_text(name):
    url = "https://img.example/images/abcdefghijklmnopqrstuv.png"
    tags = tags_of(html_code(url, name))
    assert len(tags) == 1
    tag, attrs = tags[0]
    assert tag == "img" and set(attrs) == {"src", "alt"}
    assert attrs["src"] == url
    assert "\n" not in attrs["alt"] and "\r" not in attrs["alt"]
    assert attrs["alt"] == " ".join(name.split())


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_the_markdown_code_cannot_be_broken_out_of(name):
    url = "https://img.example/images/abcdefghijklmnopqrstuv.png"
    code = markdown_code(url, name)
    match = re.fullmatch(r"!\[([^\[\]()<>`\\\n]*)\]\(([^()\s]*)\)", code)
    assert match, code
    assert match.group(2) == url


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_the_bbcode_code_is_one_img_tag(name):
    url = "https://img.example/images/abcdefghijklmnopqrstuv.png"
    assert bbcode_code(url) == f"[img]{url}[/img]"


def test_a_url_with_quotes_or_brackets_is_percent_encoded_in_every_code():
    url = 'https://img.example/a"b(c)[d] e<f>/images/n.png'
    assert '"' not in html_code(url, "x").split('alt="')[0][len('<img src="') :].rstrip('" ')
    assert re.fullmatch(r"!\[x\]\([^()\s\[\]]*\)", markdown_code(url, "x"))
    assert bbcode_code(url).count("[") == 2


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_the_pages_offer_codes_that_paste_inert(client, name):
    """The result fragment after an upload and the image page: each code, as copied, is inert."""
    body = upload(client, png_bytes(), name).json()
    pages = [client.get(f"/i/{body['filename']}", headers=HTML).text, upload(client, png_bytes(), name, HTML).text]
    for page in pages:
        values = snippet_values(page)
        assert set(values) == {"direct-link", "snippet-markdown", "snippet-html", "snippet-bbcode"}
        pasted = tags_of(values["snippet-html"])
        assert [tag for tag, _ in pasted] == ["img"]
        assert set(pasted[0][1]) == {"src", "alt"}
        assert not re.search(r"[\[\]()]", values["snippet-markdown"][2:].split("](")[0])
        assert values["snippet-bbcode"] == f"[img]{values['direct-link']}[/img]"
        # And the page itself shows the name as text, never as markup.
        assert not any(tag == "script" for tag, _ in tags_of(page) if tag == "script" and not _.get("src"))
