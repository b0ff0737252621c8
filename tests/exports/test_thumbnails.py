"""`with_thumbnails=1` on the catalogue XLSX: a small JPEG made from each image's own stored WebP
thumbnail, anchored in the first column of its own row, in the first EXPORT_THUMBNAIL_ROWS rows."""

from __future__ import annotations

import io
import zipfile

from PIL import Image

from imagehost.exports.thumbnails import PICTURE_BOX
from tests.conftest import png_bytes, run_sql, upload
from tests.exports.shop import JSON, workbook

COLOURS = [(200, 30, 30), (30, 160, 40), (20, 40, 220), (230, 200, 20)]


def catalogue_of_colours(client) -> list[str]:
    """Four 400x300 images of one colour each (the smallest thumbnail, 160, exists), oldest first."""
    for number, colour in enumerate(COLOURS):
        assert upload(client, png_bytes(400, 300, colour), name=f"c{number}.png").status_code in (200, 201)
    return [
        row["stored_name"]
        for row in run_sql(client.app.state.settings.database_url, "SELECT stored_name FROM images ORDER BY id")
    ]


def pictures_by_row(sheet) -> dict[int, tuple[int, int, int]]:
    """{row number (1-based, as Excel counts): the colour at the picture's centre} for column A."""
    found = {}
    for picture in sheet._images:
        anchor = picture.anchor._from
        assert anchor.col == 0
        image = Image.open(io.BytesIO(picture._data()))
        assert image.format == "JPEG" and max(image.size) <= PICTURE_BOX
        found[anchor.row + 1] = image.convert("RGB").getpixel((image.width // 2, image.height // 2))
    return found


def close(colour: tuple[int, int, int], wanted: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 12 for a, b in zip(colour, wanted, strict=True))  # JPEG moves colours a little


def test_each_row_gets_its_own_images_thumbnail_up_to_the_limit(make_client):
    client = make_client(export_thumbnail_rows=3)
    stored = catalogue_of_colours(client)
    answer = client.get("/export/images.xlsx", params={"with_thumbnails": "1"}, headers=JSON)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-export-thumbnail-rows"] == "3"
    assert answer.headers["x-export-thumbnails-omitted"] == "1"
    book = workbook(answer.content)
    sheet = book.worksheets[0]
    header = [cell.value for cell in sheet[1]]
    assert header[0] == "Thumbnail" and header[1:3] == ["Album", "Article"]
    assert [sheet.cell(row=n, column=header.index("Stored name") + 1).value for n in (2, 3, 4, 5)] == stored
    pictures = pictures_by_row(sheet)
    assert sorted(pictures) == [2, 3, 4]  # the fourth row is past EXPORT_THUMBNAIL_ROWS
    for row, colour in pictures.items():
        assert close(colour, COLOURS[row - 2]), (row, colour)
    assert sheet.row_dimensions[2].height >= PICTURE_BOX * 3 / 4  # tall enough for its picture
    assert sheet.row_dimensions[5].height is None or sheet.row_dimensions[5].height < PICTURE_BOX * 3 / 4
    # The sheet says what it left out, and why.
    assert book.sheetnames[-1] == "Notes"
    assert "first 3 rows" in book["Notes"]["A1"].value and "EXPORT_THUMBNAIL_ROWS" in book["Notes"]["A1"].value
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        media = [name for name in archive.namelist() if name.startswith("xl/media/")]
    assert len(media) == 3 and all(name.endswith((".jpeg", ".jpg")) for name in media)  # no WebP in an XLSX


def test_within_the_limit_there_is_no_note_and_without_the_option_no_pictures(make_client):
    client = make_client()
    catalogue_of_colours(client)
    upload(client, png_bytes(40, 30), name="tiny.png")  # smaller than every thumbnail size: none to show
    answer = client.get(
        "/export/images.xlsx", params={"with_thumbnails": "true"}, headers={**JSON, "Accept-Language": "ru"}
    )
    book = workbook(answer.content)
    assert len(book.sheetnames) == 1  # no note: nothing was left out
    assert book.worksheets[0]["A1"].value == "Миниатюра"
    assert sorted(pictures_by_row(book.worksheets[0])) == [2, 3, 4, 5]
    assert answer.headers["x-export-thumbnails-omitted"] == "0"
    plain = client.get("/export/images.xlsx", headers=JSON)
    assert workbook(plain.content).worksheets[0]._images == []
    assert workbook(plain.content).worksheets[0]["A1"].value == "Album"
    assert "x-export-thumbnail-rows" not in plain.headers
    assert client.get("/export/images.xlsx", params={"with_thumbnails": "maybe"}, headers=JSON).status_code == 422


def test_only_our_own_webp_thumbnails_are_decoded(make_client, settings):
    client = make_client()
    stored = catalogue_of_colours(client)
    thumbs = settings.images_dir / "thumbs" / "160"
    # Someone put a PNG where a WebP thumbnail was, and a WebP larger than the size it claims.
    (thumbs / f"{stored[0]}.webp").write_bytes(png_bytes(160, 120, (0, 0, 0)))
    big = io.BytesIO()
    Image.new("RGB", (2000, 1500), (0, 0, 0)).save(big, "WEBP")
    (thumbs / f"{stored[1]}.webp").write_bytes(big.getvalue())
    (thumbs / f"{stored[2]}.webp").unlink()  # and one went missing
    answer = client.get("/export/images.xlsx", params={"with_thumbnails": "1"}, headers=JSON)
    assert answer.status_code == 200
    pictures = pictures_by_row(workbook(answer.content).worksheets[0])
    assert sorted(pictures) == [5] and close(pictures[5], COLOURS[3])
