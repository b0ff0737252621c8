"""The export dialog fragment: a plain GET form whose fields the export routes take as they are."""

from __future__ import annotations

from html.parser import HTMLParser

from tests.exports.shop import ORDER, upload_shop, workbook


class Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action, self.fields, self.options, self.links = "", {}, {}, []
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self.action = attributes["action"]
        elif tag == "input" and (attributes.get("type") == "hidden" or "checked" in attributes):
            self.fields[attributes["name"]] = attributes["value"]
        elif tag == "select":
            self._select = attributes["name"]
        elif tag == "option" and self._select:
            self.options.setdefault(self._select, []).append(attributes["value"])
        elif tag == "a":
            self.links.append(attributes["href"])


def test_the_dialog_lists_the_articles_and_its_form_downloads_an_xlsx(client):
    upload_shop(client)
    environment = client.app.template_engine.engine
    html = environment.get_template("exports/_dialog.html").render(album_name="Весна", article_codes=ORDER)
    form = Form()
    form.feed(html)
    assert form.action == "/api/export-xlsx"
    assert form.options["article_name"] == ["", *ORDER]
    fields = {**form.fields, "article_name": "SKU2", "separator": form.options["separator"][0]}
    answer = client.get(form.action, params=fields)
    assert answer.status_code == 200, answer.text
    assert [row[0].value for row in workbook(answer.content).active.iter_rows(min_row=2)] == ["SKU2"]
    for link in form.links:
        assert client.get(link).status_code == 200, link
