"""Thumbnails, dimensions, metadata privacy of served bytes, the image page, regeneration."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from PIL import Image as PILImage
from PIL import ImageOps

from tests.conftest import CORPUS, HTML, PROJECT_ROOT, png_bytes, run_sql, upload


def served_image(client, url: str) -> PILImage.Image:
    response = client.get(url.replace("http://testserver.local", ""))
    assert response.status_code == 200, url
    return PILImage.open(io.BytesIO(response.content))


def test_thumbnails_are_webp_in_every_size_never_upscaled(client, settings):
    body = upload(client, png_bytes(2000, 1000), "wide.png").json()
    thumbnails = client.get("/images-list").json()["data"][0]["thumbnails"]
    assert set(thumbnails) == {"160", "480", "1280"}
    for size, url in thumbnails.items():
        assert url == f"http://testserver.local/images/thumbs/{size}/{body['filename']}.webp"
        response = client.get(url.replace("http://testserver.local", ""))
        assert response.headers["content-type"] == "image/webp"
        assert response.headers["x-content-type-options"] == "nosniff"
        with PILImage.open(io.BytesIO(response.content)) as thumbnail:
            assert thumbnail.format == "WEBP"
            assert thumbnail.size == (int(size), int(size) // 2)
            assert not thumbnail.getexif()  # no metadata at all
            assert "icc_profile" not in thumbnail.info and "xmp" not in thumbnail.info
    # Never upscaled, and never a copy as large as the image: a small image's links are the original.
    small = upload(client, png_bytes(100, 50), "small.png").json()
    listed = client.get("/images-list").json()["data"][0]
    assert listed["thumbnails"] == {"160": small["url"], "480": small["url"], "1280": small["url"]}
    assert not list((settings.images_dir / "thumbs").rglob(f"{small['filename']}.webp"))
    medium = upload(client, png_bytes(600, 300), "medium.png").json()
    made = sorted(p.parent.name for p in (settings.images_dir / "thumbs").rglob(f"{medium['filename']}.webp"))
    assert made == ["160", "480"]


def test_exif_orientation_is_applied_to_thumbnails_and_dimensions(client):
    # 400 x 200 stored, shown turned a quarter (orientation 6): 200 wide, 400 high.
    stored = PILImage.new("RGB", (400, 200), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 40, 40))  # a red corner, top-left as stored
    exif = PILImage.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif, quality=95)
    body = upload(client, buffer.getvalue(), "rotated.jpg").json()
    with PILImage.open(io.BytesIO(buffer.getvalue())) as original:
        upright = ImageOps.exif_transpose(original)
    assert (body["width"], body["height"]) == upright.size == (200, 400)
    with served_image(client, f"/images/thumbs/160/{body['filename']}.webp") as thumbnail:
        assert thumbnail.size == (80, 160)
        # The red corner sits where the upright image has it (top-right after a quarter turn).
        small = thumbnail.convert("RGB").resize((2, 4))
        reference = upright.convert("RGB").resize((2, 4))
        for xy in ((0, 0), (1, 0)):
            expected, found = reference.getpixel(xy), small.getpixel(xy)
            assert sum(abs(a - b) for a, b in zip(expected, found, strict=True)) < 90


def test_animated_gif_gets_a_first_frame_thumbnail(client):
    path = CORPUS / "accepted" / "iss634.gif"
    body = upload(client, path.read_bytes(), path.name).json()
    with served_image(client, f"/images/thumbs/160/{body['filename']}.webp") as thumbnail:
        assert getattr(thumbnail, "n_frames", 1) == 1
        assert thumbnail.size == (160, 160)
    with served_image(client, body["url"]) as original:
        assert original.n_frames == 42  # the original keeps its animation


def test_gps_and_camera_metadata_are_gone_from_the_served_bytes(client):
    path = CORPUS / "accepted" / "exif_gps.jpg"
    with PILImage.open(path) as original:
        assert original.getexif().get_ifd(0x8825)  # the sample really has GPS
    body = upload(client, path.read_bytes(), path.name).json()
    served = client.get(body["url"].replace("http://testserver.local", "")).content
    with PILImage.open(io.BytesIO(served)) as copy, PILImage.open(path) as original:
        exif = copy.getexif()
        assert not exif.get_ifd(0x8825)
        assert 0x010F not in exif and 0x0110 not in exif  # camera make and model
        assert copy.tobytes() == original.tobytes()  # pixels untouched, not re-encoded
    assert b"http://ns.adobe.com/xap" not in served
    assert body["size"] == len(served)


def test_orientation_keeps_working_in_the_served_bytes(client):
    for name, orientation in (("hopper_orientation_3.jpg", 3), ("hopper_orientation_6.jpg", 6)):
        path = CORPUS / "accepted" / name
        body = upload(client, path.read_bytes(), name).json()
        with served_image(client, body["url"]) as copy, PILImage.open(path) as original:
            assert dict(copy.getexif()) == {0x0112: orientation}
            assert ImageOps.exif_transpose(copy).tobytes() == ImageOps.exif_transpose(original).tobytes()


def test_strip_metadata_off_keeps_the_file_as_sent(make_client):
    client = make_client(strip_metadata=False)
    content = (CORPUS / "accepted" / "exif_gps.jpg").read_bytes()
    body = upload(client, content, "gps.jpg").json()
    assert client.get(body["url"].replace("http://testserver.local", "")).content == content


def test_thumbnail_sizes_setting(make_client, settings):
    client = make_client(thumbnail_sizes=(64,))
    body = upload(client, png_bytes(300, 300)).json()
    assert os.listdir(settings.images_dir / "thumbs") == ["64"]
    assert client.get("/images-list").json()["data"][0]["thumbnails"] == {
        "64": f"http://testserver.local/images/thumbs/64/{body['filename']}.webp"
    }
    none = make_client(thumbnail_sizes=())
    plain = upload(none, png_bytes()).json()
    assert none.get(f"/i/{plain['filename']}", headers=HTML).status_code == 200


def test_catalogue_shows_thumbnails_and_dimensions(client):
    body = upload(client, png_bytes(640, 480), "photo.png").json()
    html = client.get("/images/", headers=HTML).text
    assert f'src="http://testserver.local/images/thumbs/160/{body["filename"]}.webp"' in html
    assert 'loading="lazy"' in html and "srcset=" in html
    assert "640 × 480" in html
    assert client.get("/images-list").json()["data"][0]["width"] == 640


def test_image_page_shows_the_large_thumbnail_link_and_snippets(client):
    body = upload(client, png_bytes(2000, 1500), "big.png").json()
    response = client.get(f"/i/{body['filename']}", headers=HTML)
    assert response.status_code == 200
    html = response.text
    assert f'src="http://testserver.local/images/thumbs/1280/{body["filename"]}.webp"' in html
    assert "srcset=" in html and 'loading="lazy"' in html
    assert f'value="{body["url"]}"' in html  # the direct link, ready to copy
    assert f"[img]{body['url']}[/img]" in html
    assert "2000 × 1500" in html
    as_json = client.get(f"/i/{body['filename']}").json()
    assert as_json["width"] == 2000 and as_json["url"] == body["url"]
    assert client.get("/i/AAAAAAAAAAAAAAAAAAAAAA.png", headers=HTML).status_code == 404


def test_deleting_removes_the_thumbnails_too(client, settings):
    body = upload(client, png_bytes(500, 500)).json()
    assert len(list((settings.images_dir / "thumbs").rglob("*.webp"))) == 2  # 160 and 480
    client.delete(body["delete_url"].replace("http://testserver.local", ""))
    assert list((settings.images_dir / "thumbs").rglob("*.webp")) == []


def test_the_regenerate_command_makes_missing_thumbnails(client, settings):
    bodies = [upload(client, png_bytes(1400, 300, (i, 50, 50))).json() for i in range(3)]
    for thumbnail in (settings.images_dir / "thumbs").rglob("*.webp"):
        thumbnail.unlink()
    env = {
        **os.environ,
        "PYTHONPATH": f"{PROJECT_ROOT / 'src'}{os.pathsep}{PROJECT_ROOT}",
        "DATABASE_URL": settings.database_url,
        "IMAGES_DIR": str(settings.images_dir),
        "LOG_DIR": str(settings.log_dir),
        "WORKER_PROCESSES": "1",
    }
    # No app runs: the command's own worker takes its batches (one image each here) from the queue.
    result = subprocess.run(
        [sys.executable, "-m", "imagehost", "thumbnails", "--batch", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "3 of 3 images got new thumbnails." in result.stdout
    log = (settings.log_dir / "app.log").read_text()
    assert [f"ids {n} to {n} got new thumbnails" in log for n in (1, 2, 3)] == [True, True, True]
    for body in bodies:
        for size in (160, 480, 1280):
            assert (settings.images_dir / "thumbs" / str(size) / f"{body['filename']}.webp").is_file()
    again = subprocess.run([sys.executable, "-m", "imagehost", "thumbnails"], env=env, capture_output=True, text=True)
    assert "0 of 3 images got new thumbnails." in again.stdout


def test_a_file_that_needs_too_much_memory_costs_one_worker_not_the_app(make_client, settings):
    # A 7000 x 7000 canvas is under MAX_PIXELS but needs ~150 MB to decode; the worker may use 300 MB
    # of address space in all, so decoding (and the copy for the thumbnails) runs out of memory.
    buffer = io.BytesIO()
    PILImage.new("RGBA", (7000, 7000), (10, 20, 30, 255)).save(buffer, "PNG", compress_level=1)
    client = make_client(worker_processes=1, worker_memory_limit_bytes=300 * 1024 * 1024)
    response = upload(client, buffer.getvalue(), "greedy.png")
    assert response.status_code == 422
    assert "greedy.png" in response.json()["error"]
    assert list(settings.images_dir.glob("*.png")) == []
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 0
    # The worker was replaced: the next upload works.
    assert upload(client, png_bytes(), "fine.png").status_code == 201
