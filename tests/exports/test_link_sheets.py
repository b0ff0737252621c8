"""PicHosting's link sheets: layouts read back with openpyxl and csv, compared with the database."""

from __future__ import annotations

import zipfile
from io import BytesIO
from urllib.parse import quote

import pytest

from tests.conftest import HTML
from tests.exports.shop import HOSTILE, JSON, ORDER, csv_rows, links_in_photo_order, upload_shop, workbook

RUSSIAN = {"Accept-Language": "ru"}


def test_in_row_xlsx_one_hyperlink_per_image_in_photo_order(client, settings):
    upload_shop(client)
    answer = client.post("/api/export-xlsx", json={"album_name": "Весна"}, headers=JSON)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/vnd.openxmlformats")
    expected = links_in_photo_order(settings.database_url)
    sheet = workbook(answer.content).active
    rows = list(sheet.iter_rows())
    widest = max(len(links) for links in expected.values())
    assert [cell.value for cell in rows[0]] == ["Article", *(f"Link {n}" for n in range(1, widest + 1))]
    assert sheet.freeze_panes == "A2"
    assert [row[0].value for row in rows[1:]] == ORDER
    for row in rows[1:]:
        links = [cell for cell in row[1:] if cell.value]
        assert [cell.value for cell in links] == expected[row[0].value]
        assert [cell.hyperlink.target for cell in links] == expected[row[0].value]  # real, clickable links


def test_hostile_codes_are_plain_strings_in_xlsx(client):
    upload_shop(client)
    content = client.get("/api/export-xlsx", params={"album_name": "Весна"}, headers=JSON).content
    sheet = workbook(content).active
    codes = {row[0].value: row[0] for row in sheet.iter_rows(min_row=2)}
    for code in HOSTILE:
        assert codes[code].data_type == "s" and codes[code].hyperlink is None
    with zipfile.ZipFile(BytesIO(content)) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml  # no formula anywhere


def test_in_cell_joins_links_with_the_separator_and_wraps_lines(client, settings):
    upload_shop(client)
    body = {"album_name": "Весна", "article_name": "SKU2", "export_type": "in_cell", "separator": "\n"}
    answer = client.post("/api/export-xlsx", json=body, headers={**JSON, **RUSSIAN})
    assert answer.status_code == 200, answer.text
    sheet = workbook(answer.content).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows == [["Артикул", "Ссылки"], ["SKU2", "\n".join(links_in_photo_order(settings.database_url)["SKU2"])]]
    assert sheet["B2"].alignment.wrap_text
    assert "links_%D0%92%D0%B5%D1%81%D0%BD%D0%B0_SKU2.xlsx" in answer.headers["content-disposition"]
    # The separator from a plain link: `\n` typed as two characters means a new line too.
    plain = client.get("/api/export-xlsx", params={**body, "separator": "\\n"}, headers=JSON)
    assert workbook(plain.content).active["B2"].value == rows[1][1]


def test_russian_headers_and_unicode_file_name(client):
    upload_shop(client)
    answer = client.get("/api/export-xlsx", params={"album_name": "Весна"}, headers={**JSON, **RUSSIAN})
    header = [cell.value for cell in next(workbook(answer.content).active.iter_rows())]
    assert header[:3] == ["Артикул", "Ссылка 1", "Ссылка 2"]
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert f"filename*=UTF-8''{quote('links_Весна.xlsx', safe='')}" in disposition


def test_csv_has_a_bom_the_delimiter_and_inert_cells(client, settings):
    upload_shop(client)
    expected = links_in_photo_order(settings.database_url)
    answer = client.post("/api/export-csv", json={"album_name": "Весна", "delimiter": ";"}, headers=JSON)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert f"filename*=UTF-8''{quote('links_Весна.csv', safe='')}" in answer.headers["content-disposition"]
    rows = csv_rows(answer.content, ";")
    assert rows[0][:2] == ["Article", "Link 1"] and len({len(row) for row in rows}) == 1
    codes = [row[0] for row in rows[1:]]
    assert codes == ["'" + code if code[0] in "=+-@" else code for code in ORDER]
    for row in rows[1:]:
        code = row[0].removeprefix("'")
        assert [link for link in row[1:] if link] == expected[code]
    # Default: `,` and in_row; GET works the same.
    plain = client.get("/api/export-csv", params={"album_name": "Весна", "export_type": "in_cell"}, headers=JSON)
    in_cell = csv_rows(plain.content, ",")
    assert in_cell[0] == ["Article", "Links"]
    assert in_cell[ORDER.index("SKU2") + 1] == ["SKU2", ", ".join(expected["SKU2"])]


def test_the_cyrillic_csv_reads_back_in_utf8(client):
    upload_shop(client)
    answer = client.get("/api/export-csv", params={"album_name": "Весна", "article_name": "Артикул 1"}, headers=JSON)
    rows = csv_rows(answer.content)
    assert rows[1][0] == "Артикул 1"


@pytest.mark.parametrize("path", ["/api/export-xlsx", "/api/export-csv"])
def test_errors_in_the_form_the_client_asked_for(client, path):
    upload_shop(client)
    missing = client.post(path, json={}, headers=JSON)
    assert missing.status_code == 400 and "album_name" in missing.json()["error"]
    unknown = client.get(path, params={"album_name": "Осень"}, headers=JSON)
    assert unknown.status_code == 404 and "Осень" in unknown.json()["error"]
    article = client.get(path, params={"album_name": "Весна", "article_name": "SKU99"}, headers=JSON)
    assert article.status_code == 404 and "SKU99" in article.json()["error"]
    page = client.get(path, params={"album_name": "Осень"}, headers=HTML)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "Осень" in page.text
    russian = client.get(path, headers={**HTML, **RUSSIAN})
    assert russian.status_code == 400 and "album_name" in russian.text and "обязател" in russian.text
    wrong = client.get(path, params={"album_name": "Весна", "export_type": "sideways"}, headers=JSON)
    assert wrong.status_code == 422


def test_a_viewer_may_export_and_a_stranger_may_not(make_oidc_client, sign_in):
    client = make_oidc_client()
    assert sign_in(client, "maker", roles=["appuser"]).status_code == 303
    upload_shop(client)
    client.cookies.clear()
    refused = client.get("/api/export-xlsx", params={"album_name": "Весна"}, headers=JSON)
    assert refused.status_code == 401
    assert sign_in(client, "looker", roles=["appviewer"]).status_code == 303
    for path in ("/api/export-xlsx", "/api/export-csv"):
        assert client.get(path, params={"album_name": "Весна"}, headers=JSON).status_code == 200


def test_each_export_is_logged_with_who_and_how_many_rows(client, app_log):
    upload_shop(client)
    client.get("/api/export-xlsx", params={"album_name": "Весна"}, headers=JSON)
    client.get("/api/export-csv", params={"album_name": "Весна"}, headers=JSON)
    lines = [line for line in app_log() if "export " in line]
    assert any("xlsx links of Весна" in line and f"{len(ORDER)} row(s)" in line for line in lines), lines
    assert any("csv links of Весна" in line and f"{len(ORDER)} row(s)" in line for line in lines), lines


def test_a_post_without_json_reads_the_query_string_and_form(client):
    upload_shop(client)
    by_query = client.post("/api/export-csv?album_name=%D0%92%D0%B5%D1%81%D0%BD%D0%B0", headers=JSON)
    by_form = client.post("/api/export-csv", data={"album_name": "Весна", "delimiter": ";"}, headers=JSON)
    assert by_query.status_code == 200 and by_form.status_code == 200, (by_query.text, by_form.text)
    assert csv_rows(by_query.content) == [row for row in csv_rows(by_form.content, ";")]


@pytest.mark.parametrize("path", ["/api/export-xlsx", "/api/export-csv"])
@pytest.mark.parametrize("body", [b"\x00", b"{not json", b'["a list"]'])
def test_a_body_that_is_no_json_object_is_the_clients_mistake(client, path, body):
    """Found by schemathesis: bytes that are no JSON were a 500."""
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert "JSON" in response.json()["error"]
