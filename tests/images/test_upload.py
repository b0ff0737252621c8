"""POST /upload in its three representations, every refusal, and the files and rows it leaves."""

from __future__ import annotations

import hashlib
import io
import re

import pytest
from PIL import Image as PILImage

from tests.conftest import CORPUS, HTML, HTMX, another_browser, png_bytes, run_sql, stored_files, upload

MIB = 1024 * 1024


def test_json_upload_answers_201_with_the_documented_fields(client, settings):
    content = png_bytes()
    response = upload(client, content, "cat.png")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "status",
        "id",
        "filename",
        "original_name",
        "size",
        "size_kb",
        "file_type",
        "content_type",
        "upload_time",
        "url",
        "delete_url",
        "width",
        "height",
        "page_url",
        "download_url",
        "thumbnails",
    }
    assert (body["width"], body["height"]) == (32, 24)
    assert body["page_url"] == f"http://testserver.local/i/{body['filename']}"
    assert body["status"] == "success"
    assert body["original_name"] == "cat.png"
    assert body["size"] == len(content)
    assert body["file_type"] == "png"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}\.png", body["filename"])  # 128 random bits
    assert body["url"] == f"http://testserver.local/images/{body['filename']}"
    assert body["delete_url"].startswith(f"http://testserver.local/delete/{body['id']}?key=")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", body["upload_time"])
    # The file on disk is exactly what was sent, and the row describes it.
    assert (settings.images_dir / body["filename"]).read_bytes() == content
    row = run_sql(settings.database_url, "SELECT * FROM images WHERE id = $1", body["id"])[0]
    assert row["stored_name"] == body["filename"]
    assert row["size_bytes"] == len(content)
    assert row["file_format"] == "PNG"
    assert row["sha256"] == hashlib.sha256(content).hexdigest()
    assert row["uploaded_at"].tzinfo is not None


def test_the_direct_link_serves_the_image_with_inert_headers(client):
    content = png_bytes()
    name = upload(client, content).json()["filename"]
    response = client.get(f"/images/{name}")
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert "immutable" in response.headers["cache-control"]
    assert "set-cookie" not in response.headers
    missing = client.get("/images/AAAAAAAAAAAAAAAAAAAAAA.png")
    assert missing.status_code == 404
    assert missing.headers["x-content-type-options"] == "nosniff"
    assert client.get("/images/..%2F..%2Fetc%2Fpasswd").status_code == 404


def test_names_are_unique_and_the_name_of_the_format_not_of_the_file(client):
    names = {upload(client, png_bytes(), "same.jpg").json()["filename"] for _ in range(5)}
    assert len(names) == 5
    assert all(name.endswith(".png") for name in names)  # the content is PNG, whatever the client said


def test_unicode_and_hostile_original_names_are_kept_as_metadata_only(client, settings):
    hostile = '<img src=x onerror=alert(1)>\n"кот".png'
    body = upload(client, png_bytes(), hostile).json()
    assert body["original_name"] == '<img src=x onerror=alert(1)>"кот".png'  # the line break is dropped
    page = client.get("/images/", headers=HTML).text
    assert "<img src=x onerror" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    # A client-side path is reduced to the file's own name.
    assert upload(client, png_bytes(), "C:\\Users\\me\\фото.png").json()["original_name"] == "фото.png"
    assert body["filename"] in stored_files(settings)


@pytest.mark.parametrize("path", sorted((CORPUS / "accepted").iterdir()), ids=lambda p: p.name)
def test_every_accepted_corpus_file_is_stored_and_served_back_as_the_same_image(client, path):
    """Metadata is stripped (STRIP_METADATA, on by default): the pixels are the same, the bytes may not be."""
    content = path.read_bytes()
    response = upload(client, content, path.name)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["file_type"] == {".jpg": "jpg", ".png": "png", ".gif": "gif"}[path.suffix]
    served = client.get(f"/images/{body['filename']}").content
    assert len(served) <= len(content)
    with PILImage.open(io.BytesIO(content)) as original, PILImage.open(io.BytesIO(served)) as copy:
        assert copy.format == original.format and copy.size == original.size
        assert getattr(copy, "n_frames", 1) == getattr(original, "n_frames", 1)
        assert copy.tobytes() == original.tobytes()


@pytest.mark.parametrize("path", sorted((CORPUS / "accepted").iterdir()), ids=lambda p: p.name)
def test_with_metadata_kept_accepted_files_are_served_back_byte_identical(make_client, path):
    client = make_client(strip_metadata=False)
    content = path.read_bytes()
    body = upload(client, content, path.name).json()
    assert client.get(f"/images/{body['filename']}").content == content


REFUSED = {
    "other-formats/hopper.bmp": 415,
    "other-formats/hopper.webp": 415,
    "other-formats/multipage.tiff": 415,
    "malformed/broken.png": 400,
    "malformed/decompression_bomb.gif": 413,
    "malformed/zero_width.gif": 400,
    "hostile/empty.png": 400,
    "hostile/text-named.jpg": 415,
    "hostile/page-named.png": 415,
    "hostile/gifjs-polyglot.gif": 400,
    "hostile/script.svg": 415,
}


@pytest.mark.parametrize("relative", sorted(REFUSED))
def test_refused_corpus_files_get_a_clear_4xx_and_leave_nothing(client, settings, relative):
    path = CORPUS / relative
    response = upload(client, path.read_bytes(), path.name)
    assert response.status_code == REFUSED[relative]
    body = response.json()
    assert body["status"] == "error"
    assert path.name in body["error"]
    assert stored_files(settings) == []
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 0


@pytest.mark.parametrize(
    ("relative", "served_type", "kept"),
    [
        ("hostile/png-named.gif", "image/png", 77),  # a real PNG named .gif: stored as the PNG it is
        ("hostile/png-trailing-html.png", "image/png", 77),  # the HTML after IEND is cut off
        ("hostile/jpeg-php-comment.jpg", "image/jpeg", 633),  # a real JPEG: its PHP comment stripped
    ],
)
def test_real_images_with_misleading_names_or_payloads_are_stored_as_what_they_are(client, relative, served_type, kept):
    path = CORPUS / relative
    body = upload(client, path.read_bytes(), path.name).json()
    served = client.get(f"/images/{body['filename']}")
    assert served.headers["content-type"] == served_type
    assert served.headers["x-content-type-options"] == "nosniff"
    assert len(served.content) == kept
    for payload in (b"<html", b"<script", b"<?php"):
        assert payload not in served.content.lower()


def test_no_file_field_is_a_400(client):
    response = client.post("/upload", data={"other": "x"})
    assert response.status_code == 400
    assert "No file" in response.json()["error"]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def exactly(size: int) -> bytes:
    """A valid PNG of exactly `size` bytes, all of it image: one grey row, stored (level 0) deflate.

    Nothing in it is metadata, so stripping leaves it as it is.
    """
    import struct
    import zlib

    def build(width: int) -> bytes:
        header = struct.pack(">IIBBBBB", width, 1, 8, 0, 0, 0, 0)
        pixels = zlib.compress(b"\0" + bytes(range(256)) * (width // 256) + bytes(width % 256), 0)
        return (
            b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", pixels) + _png_chunk(b"IEND", b"")
        )

    width = size - 70
    while True:  # each stored deflate block adds 5 bytes: step down until the size fits exactly
        candidate = build(width)
        if len(candidate) == size:
            return candidate
        width -= max(1, len(candidate) - size)
        if width < 1:
            raise ValueError(f"cannot build a PNG of exactly {size} bytes")


def test_exactly_the_limit_is_accepted_and_one_byte_more_is_413(client, settings):
    at_limit = exactly(5 * MIB)
    assert len(at_limit) == 5 * MIB
    accepted = upload(client, at_limit, "limit.png")
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["size"] == 5 * MIB
    over = upload(client, exactly(5 * MIB + 1), "over.png")
    assert over.status_code == 413
    assert "over.png" in over.json()["error"] and "5 MB" in over.json()["error"]
    assert stored_files(settings) == [accepted.json()["filename"]]


def test_a_body_far_over_the_limit_is_refused_413(client, settings):
    response = upload(client, b"\0" * (20 * MIB), "huge.png")
    assert response.status_code == 413
    assert "5 MB" in response.json()["error"]
    assert stored_files(settings) == []


def test_too_many_pixels_are_refused_before_decoding(make_client, settings):
    client = make_client(max_pixels=1000)
    response = upload(client, png_bytes(40, 40), "wide.png")
    assert response.status_code == 413
    assert "1,600" in response.json()["error"] and "1,000" in response.json()["error"]


def test_animation_frames_count_towards_the_pixel_limit(make_client):
    frames = [PILImage.new("RGB", (20, 20), (50 * i, 0, 0)) for i in range(5)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    client = make_client(max_pixels=20 * 20 * 4)
    assert upload(client, buffer.getvalue(), "anim.gif").status_code == 413
    assert (
        make_client(max_pixels=20 * 20 * 5).post("/upload", files={"file": ("anim.gif", buffer.getvalue())}).status_code
        == 201
    )


def test_allowed_formats_setting_narrows_the_list(make_client):
    client = make_client(allowed_formats=("JPEG",))
    response = upload(client, png_bytes(), "x.png")
    assert response.status_code == 415
    assert "JPEG" in response.json()["error"]


def test_htmx_upload_gets_the_result_fragment_with_link_and_snippets(client):
    response = upload(client, png_bytes(), "frag.png", headers=HTMX)
    assert response.status_code == 201
    assert "HX-Request" in response.headers["vary"]
    html = response.text
    assert "<html" not in html
    match = re.search(r'id="direct-link"[^>]*value="([^"]+)"', html)
    assert match and "/images/" in match.group(1)
    url = match.group(1)
    assert f"![frag.png]({url})" in html
    assert f"[img]{url}[/img]" in html
    # "Your recent uploads" is refreshed out of band, with the new link in it.
    recent = html[html.index('id="recent"') :]
    assert 'hx-swap-oob="true"' in recent[:60] and url in recent
    assert "&lt;img src=&#34;" in html or "&lt;img src=&quot;" in html or f'<img src="{url}"' in html


def test_htmx_upload_error_is_a_fragment_retargeted_to_the_result_area(client):
    response = upload(client, b"not an image", "notes.txt", headers=HTMX)
    assert response.status_code == 415
    assert response.headers["hx-retarget"] == "#messages"
    assert "notes.txt" in response.text and "<html" not in response.text


def test_browser_form_post_gets_a_whole_page(client):
    ok = upload(client, png_bytes(), "page.png", headers=HTML)
    assert ok.status_code == 201
    assert "<html" in ok.text and "direct-link" in ok.text
    bad = upload(client, b"GIF89a broken", "bad.gif", headers=HTML)
    assert bad.status_code == 400
    assert "<html" in bad.text and "bad.gif" in bad.text


def test_recent_uploads_are_listed_for_this_browser_only(client):
    body = upload(client, png_bytes(), "mine.png").json()
    page = client.get("/upload", headers=HTML).text
    assert body["url"] in page
    with another_browser(client) as stranger:
        assert body["url"] not in stranger.get("/upload", headers=HTML).text


def test_stray_temporary_files_are_removed_at_start(settings, make_client):
    staging = settings.images_dir / ".staging"
    staging.mkdir(parents=True)
    (staging / "half-written.png.part").write_bytes(b"partial")
    make_client()
    assert list(staging.iterdir()) == []


def test_a_failed_database_insert_leaves_no_file(client, settings):
    # A unique-name clash makes the insert fail after validation: nothing may remain on disk.
    from imagehost.images import service as service_module

    original = service_module.new_stored_name
    first = upload(client, png_bytes()).json()["filename"]
    service_module.new_stored_name = lambda extension: first
    try:
        response = upload(client, png_bytes(), "clash.png")
    finally:
        service_module.new_stored_name = original
    assert response.status_code == 500
    assert stored_files(settings) == [first]
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 1


def test_uploads_are_rate_limited_per_client_with_retry_after(make_client, settings, app_log):
    client = make_client(upload_rate_limit=3)
    for _ in range(3):
        assert upload(client, png_bytes()).status_code == 201
    assert client.get("/upload", headers=HTML).status_code == 200  # the page itself is not counted
    refused = upload(client, png_bytes())
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "wait" in refused.json()["error"]
    assert len(stored_files(settings)) == 3
    assert any("Refused: POST /upload from" in line and "rate limit" in line for line in app_log())
