"""An album as a shop uploads it, hostile article codes included, and ways to read exports back."""

from __future__ import annotations

import csv
import io

import openpyxl

from tests.albums.zips import make_zip, photo
from tests.conftest import run_sql

JSON = {"Accept": "application/json"}
HOSTILE = ['=HYPERLINK("evil.example","x")', "+1", "@SUM(A1)", "-2"]
ENTRIES = [
    ("Весна/SKU10/a.png", photo(1)),
    ("Весна/SKU2/b.png", photo(2)),
    ("Весна/SKU2/c.png", photo(3)),
    ("Весна/Артикул 1/d.png", photo(4)),
    *((f"Весна/{code}/e.png", photo(10 + n)) for n, code in enumerate(HOSTILE)),
]
# Natural order of article code: SKU2 before SKU10 (case and digits as numbers).
ORDER = ["+1", "-2", '=HYPERLINK("evil.example","x")', "@SUM(A1)", "SKU2", "SKU10", "Артикул 1"]


def upload_shop(client, entries=ENTRIES, name: str = "shop.zip", headers: dict | None = None) -> None:
    answer = client.post(
        "/api/upload",
        files={"zipfile": (name, make_zip(entries), "application/zip")},
        headers={**JSON, **(headers or {})},
    )
    assert answer.status_code == 201, answer.text


def links_in_photo_order(database_url: str, album: str = "Весна") -> dict[str, list[str]]:
    rows = run_sql(
        database_url,
        "SELECT ar.code, i.stored_name FROM album_images ai JOIN articles ar ON ar.id = ai.article"
        " JOIN albums al ON al.id = ai.album JOIN images i ON i.id = ai.image WHERE al.name = $1"
        " ORDER BY ai.position, ai.image",
        album,
    )
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["code"], []).append(f"http://testserver.local/images/{row['stored_name']}")
    return found


def workbook(content: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(content))


def csv_rows(content: bytes, delimiter: str = ",") -> list[list[str]]:
    assert content.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline=""), delimiter=delimiter))
