"""An album as one streamed ZIP: member names safe whatever the user names, bytes as stored."""

from __future__ import annotations

import io
import zipfile
from urllib.parse import quote

from tests.albums.zips import make_zip, photo
from tests.conftest import HTML, run_sql
from tests.exports.shop import JSON

LONG = "Д" * 200
ENTRIES = [
    ("Весна/Артикул 1/a.png", photo(1)),
    ("Весна/Артикул 1/b.png", photo(2)),
    ("Весна/Артикул 1/c.png", photo(3)),
    ("Весна/con/d.png", photo(4)),
    (f"Весна/{LONG}/e.png", photo(5)),
    ('Весна/x:y*?"<>|. /f.png', photo(6)),
]


def shop(client, settings) -> dict[str, bytes]:
    answer = client.post(
        "/api/upload", files={"zipfile": ("s.zip", make_zip(ENTRIES), "application/zip")}, headers=JSON
    )
    assert answer.status_code == 201, answer.text
    # Names as hostile as a row can hold (an older upload, a restore): the archive must not trust them.
    run_sql(settings.database_url, "UPDATE images SET original_name = '../../x' WHERE original_name = 'a.png'")
    run_sql(settings.database_url, "UPDATE images SET original_name = 'same.PNG' WHERE original_name = 'b.png'")
    run_sql(settings.database_url, "UPDATE images SET original_name = 'Same.png' WHERE original_name = 'c.png'")
    run_sql(settings.database_url, "UPDATE images SET original_name = 'CON.png' WHERE original_name = 'd.png'")
    run_sql(settings.database_url, f"UPDATE images SET original_name = '{'я' * 300}.png' WHERE original_name = 'e.png'")
    rows = run_sql(settings.database_url, "SELECT stored_name FROM images")
    return {row["stored_name"]: (settings.images_dir / row["stored_name"]).read_bytes() for row in rows}


def test_member_names_are_safe_and_the_bytes_are_the_stored_ones(client, settings):
    stored = shop(client, settings)
    answer = client.get(f"/download/album/{quote('Весна')}", headers=JSON)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    assert f"filename*=UTF-8''{quote('Весна.zip', safe='')}" in answer.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
        names = [info.filename for info in infos]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)
        contents = sorted(archive.read(name) for name in names)
    assert contents == sorted(stored.values())  # byte for byte
    for name in names:
        parts = name.split("/")
        assert len(parts) == 2, name
        for part in parts:
            assert part not in {"", ".", ".."} and not set(part) & set('<>:"\\|?*'), name
            assert len(part) <= 100 and len(part.encode()) <= 200 and not part.endswith((".", " ")), name
    first = sorted(n for n in names if n.startswith("Артикул 1/"))
    assert (
        first == ["Артикул 1/Same (2).png", "Артикул 1/same.PNG", "Артикул 1/x.png"]
        or len({n.casefold() for n in first}) == 3
    )
    assert "Артикул 1/x.png" in names  # `../../x` lost its path, kept its name, got its real extension
    assert "_con/_CON.png" in names  # Windows' reserved names never come out as they are
    assert any(n.startswith("Д" * 90) and n.endswith(".png") for n in names)
    assert any(n.startswith("x_y") for n in names)


def test_one_article_and_the_errors(client, settings):
    shop(client, settings)
    one = client.get(f"/download/album/{quote('Весна')}/con", headers=JSON)
    with zipfile.ZipFile(io.BytesIO(one.content)) as archive:
        assert archive.namelist() == ["_con/_CON.png"]
    assert client.get("/download/album/nothing", headers=JSON).status_code == 404
    missing = client.get(f"/download/album/{quote('Весна')}/SKU9", headers=HTML)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")


def test_only_those_who_may_browse(make_oidc_client, sign_in):
    client = make_oidc_client()
    assert sign_in(client, "maker", roles=["appuser"]).status_code == 303
    answer = client.post(
        "/api/upload", files={"zipfile": ("s.zip", make_zip(ENTRIES[:1]), "application/zip")}, headers=JSON
    )
    assert answer.status_code == 201
    client.cookies.clear()
    assert client.get(f"/download/album/{quote('Весна')}", headers=JSON).status_code == 401
    assert sign_in(client, "looker", roles=["appviewer"]).status_code == 303
    assert client.get(f"/download/album/{quote('Весна')}", headers=JSON).status_code == 200
