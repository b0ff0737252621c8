"""The catalogue as a spreadsheet: filters, columns, the hostile names inert, links clickable."""

from __future__ import annotations

from tests.albums.zips import photo
from tests.conftest import HTML, run_sql, upload
from tests.exports.shop import JSON, csv_rows, upload_shop, workbook


def test_every_image_one_row_with_its_album_and_article(client, settings):
    upload_shop(client)
    upload(client, photo(99), name='=HYPERLINK("evil.example","x").png')
    rows = csv_rows(client.get("/export/images.csv", headers=JSON).content)
    header = rows[0]
    assert header[:6] == ["Album", "Article", "Original name", "Stored name", "Direct link", "Image page"]
    assert "Uploader" not in header  # only administrators see who uploaded
    count = run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0]
    assert len(rows) == count + 1
    loose = [row for row in rows[1:] if row[0] == ""]
    assert len(loose) == 1 and loose[0][2] == "'" + '=HYPERLINK("evil.example","x").png'
    stored = {row["stored_name"]: row for row in run_sql(settings.database_url, "SELECT * FROM images")}
    for row in rows[1:]:
        # A stored name may begin with "-" (128 random URL-safe bits): Excel would read it as a
        # formula, so the cell carries the inert "'" prefix.
        name = row[3][1:] if row[3].startswith("'-") else row[3]
        image = stored[name]
        assert row[4] == f"http://testserver.local/images/{image['stored_name']}"
        assert int(row[header.index("Size in bytes")]) == image["size_bytes"]
        assert row[header.index("Format")] == "png"


def test_filters_and_columns(client, settings):
    upload_shop(client)
    upload_shop(client, [("Лето/A1/x.gif", _gif())], name="summer.zip")
    only = {"album_name": "Весна", "article_name": "SKU2", "columns": "original_name,article,url"}
    rows = csv_rows(client.get("/export/images.csv", params=only, headers=JSON).content)
    assert rows[0] == ["Original name", "Article", "Direct link"]
    assert sorted(row[0] for row in rows[1:]) == ["b.png", "c.png"]
    gifs = csv_rows(client.get("/export/images.csv", params={"format": "gif"}, headers=JSON).content)
    assert [row[0] for row in gifs[1:]] == ["Лето"]
    none = csv_rows(client.get("/export/images.csv", params={"to": "2000-01-01"}, headers=JSON).content)
    assert len(none) == 1
    today = run_sql(settings.database_url, "SELECT min(uploaded_at)::date::text FROM images")[0][0]
    since = csv_rows(client.get("/export/images.csv", params={"from": today, "to": today}, headers=JSON).content)
    assert len(since) == 1 + run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0]
    assert client.get("/export/images.csv", params={"format": "tiff"}, headers=JSON).status_code == 422
    assert client.get("/export/images.csv", params={"from": "yesterday"}, headers=JSON).status_code == 422
    assert client.get("/export/images.csv", params={"columns": "secret"}, headers=JSON).status_code == 422
    refused = client.get("/export/images.xlsx", params={"uploader": "someone"}, headers=HTML)
    assert refused.status_code == 422 and refused.headers["content-type"].startswith("text/html")


def test_xlsx_frozen_header_links_and_strings(client):
    upload_shop(client)
    answer = client.get(
        "/export/images.xlsx", params={"album_name": "Весна"}, headers={**JSON, "Accept-Language": "ru"}
    )
    assert answer.status_code == 200
    assert "images.xlsx" in answer.headers["content-disposition"]
    sheet = workbook(answer.content).active
    assert sheet.freeze_panes == "A2"
    header = [cell.value for cell in next(sheet.iter_rows())]
    assert header[:3] == ["Альбом", "Артикул", "Исходное имя"] or header[:2] == ["Альбом", "Артикул"]
    for row in sheet.iter_rows(min_row=2):
        assert row[1].data_type == "s"  # `=HYPERLINK(...)`, `+1`, `@SUM(A1)` stay text
        assert row[4].hyperlink is not None and row[4].hyperlink.target == row[4].value
        assert isinstance(row[header.index("Размер в байтах")].value, int)
    assert sheet.column_dimensions["E"].width >= 50


def test_hyperlinks_stop_at_the_per_sheet_limit_and_rows_go_on(tmp_path):
    """Past the limit a link is plain text; past the row limit a new sheet starts (limits made small)."""
    from imagehost.exports.xlsx_writer import Cell, SheetWriter

    writer = SheetWriter(tmp_path / "x.xlsx", "Links", ["Link"], max_rows=4, max_links=2)
    for n in range(5):
        writer.write_row([Cell(f"http://example.test/{n}", link=True)])
    writer.close()
    book = workbook((tmp_path / "x.xlsx").read_bytes())
    assert book.sheetnames == ["Links", "Links (2)"]
    first, second = book.worksheets
    assert [c.value for c in first["A"]] == [
        "Link",
        "http://example.test/0",
        "http://example.test/1",
        "http://example.test/2",
    ]
    assert [c.hyperlink is not None for c in first["A"][1:]] == [True, True, False]
    assert [c.value for c in second["A"]] == ["Link", "http://example.test/3", "http://example.test/4"]
    assert all(c.hyperlink is not None for c in second["A"][1:])  # the count starts again on a new sheet


def _gif() -> bytes:
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("P", (20, 20)).save(buffer, "GIF")
    return buffer.getvalue()
