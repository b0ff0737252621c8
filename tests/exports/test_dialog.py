"""The export dialog fragment: a plain GET form whose fields the export routes take as they are."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import quote

from tests.albums.zips import photo
from tests.conftest import HTML, run_sql, upload
from tests.exports.shop import ORDER, csv_rows, upload_shop, workbook


class Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action, self.formaction, self.fields, self.options, self.links = "", "", {}, {}, []
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
        elif tag == "button" and "formaction" in attributes:
            self.formaction = attributes["formaction"]


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


def part_of(html: str, start: str, end: str) -> str:
    begin = html.index(start)
    return html[begin : html.index(end, begin) + len(end)]


def test_the_album_page_has_the_dialog_and_every_form_and_link_in_it_works(client, settings):
    upload_shop(client)
    page = client.get(f"/albums/{quote('Весна')}", headers=HTML)
    assert page.status_code == 200
    form = Form()
    form.feed(part_of(page.text, '<details id="export-dialog"', "</details>"))
    assert form.action == "/api/export-xlsx" and form.fields["album_name"] == "Весна"
    assert form.options["article_name"][0] == "" and set(form.options["article_name"][1:]) == set(ORDER)
    xlsx = client.get(form.action, params=form.fields)
    assert xlsx.status_code == 200 and xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert [row[0].value for row in workbook(xlsx.content).active.iter_rows(min_row=2)] == ORDER
    csv = client.get(form.formaction, params={**form.fields, "delimiter": ";"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert [row[0].removeprefix("'") for row in csv_rows(csv.content, ";")[1:]] == ORDER
    images = run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0]
    kinds = set()
    for link in form.links:
        answer = client.get(link)
        assert answer.status_code == 200, link
        kinds.add(answer.headers["content-type"].split(";")[0])
        if link.startswith("/export/images.csv"):
            assert len(csv_rows(answer.content)) == images + 1  # every image of the album
    assert kinds == {"application/zip", "text/csv", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def test_the_catalogue_page_links_to_its_spreadsheets_with_its_filters(client):
    upload_shop(client)
    upload(client, photo(77), name="loose.png")
    page = client.get("/images/", params={"album_name": "Весна", "article_name": "SKU2"}, headers=HTML)
    links = Form()
    links.feed(part_of(page.text, '<p id="catalogue-export"', "</p>"))
    assert len(links.links) == 3
    for link in links.links:
        answer = client.get(link)
        assert answer.status_code == 200, link
        if link.startswith("/export/images.csv"):
            assert sorted(row[2] for row in csv_rows(answer.content)[1:]) == ["b.png", "c.png"]
        else:
            rows = list(workbook(answer.content).worksheets[0].iter_rows(min_row=2))
            assert len(rows) == 2
    everything = Form()
    everything.feed(part_of(client.get("/images/", headers=HTML).text, '<p id="catalogue-export"', "</p>"))
    assert everything.links[0] == "/export/images.csv"
    assert len(csv_rows(client.get(everything.links[0]).content)) == 1 + len(ORDER) + 1 + 1  # SKU2 holds two
