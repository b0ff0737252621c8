"""The migrations, run as `piccolo migrations forwards` runs them: on a fresh database, step by step."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from PIL import Image as PILImage

from tests.conftest import CORPUS, PROJECT_ROOT, run_sql

BEFORE_DIMENSIONS_WERE_FILLED = "2026-11-24T00:33:38:008820"


def piccolo(database_url: str, *arguments: str, images_dir: str = "") -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PYTHONPATH": f"{PROJECT_ROOT / 'src'}{os.pathsep}{PROJECT_ROOT}",
        "IMAGES_DIR": images_dir,
    }
    piccolo_cli = os.path.join(os.path.dirname(sys.executable), "piccolo")
    result = subprocess.run(
        [piccolo_cli, "migrations", *arguments], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_existing_images_get_their_width_and_height(database_url, tmp_path):
    run_sql(database_url, "DROP DATABASE IF EXISTS images_migration_test")
    run_sql(database_url, "CREATE DATABASE images_migration_test")
    fresh = database_url.replace("/images_test?", "/images_migration_test?")
    piccolo(fresh, "forwards", "images", f"--migration_id={BEFORE_DIMENSIONS_WERE_FILLED}")
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    samples = {"AAAAAAAAAAAAAAAAAAAAAA.png": (CORPUS / "accepted" / "test-card.png").read_bytes()}  # 640 x 480
    rotated = PILImage.new("RGB", (200, 100))
    exif = PILImage.Exif()
    exif[0x0112] = 6  # shown turned a quarter: 100 wide, 200 high
    buffer = io.BytesIO()
    rotated.save(buffer, "JPEG", exif=exif)
    samples["BBBBBBBBBBBBBBBBBBBBBB.jpg"] = buffer.getvalue()
    for stored_name, content in samples.items():
        (images_dir / stored_name).write_bytes(content)
    for stored_name in [*samples, "CCCCCCCCCCCCCCCCCCCCCC.gif"]:  # the last one's file is missing
        run_sql(
            fresh,
            "INSERT INTO images (stored_name, original_name, size_bytes, file_format, sha256, delete_key_hash)"
            " VALUES ($1, 'x', 1, 'PNG', '', '')",
            stored_name,
        )
    assert run_sql(fresh, "SELECT count(*) FROM images WHERE width IS NULL")[0][0] == 3
    piccolo(fresh, "forwards", "all", images_dir=str(images_dir))
    sizes = {row["stored_name"][0]: (row["width"], row["height"]) for row in run_sql(fresh, "SELECT * FROM images")}
    assert sizes == {"A": (640, 480), "B": (100, 200), "C": (None, None)}
    assert run_sql(fresh, "SELECT total FROM image_totals")[0][0] == 3


def test_every_migration_can_be_reversed_and_replayed(database_url):
    run_sql(database_url, "DROP DATABASE IF EXISTS images_migration_test")
    run_sql(database_url, "CREATE DATABASE images_migration_test")
    fresh = database_url.replace("/images_test?", "/images_migration_test?")
    piccolo(fresh, "forwards", "all")
    piccolo(fresh, "backwards", "images", "--migration_id=all", "--auto_agree")
    assert not run_sql(fresh, "SELECT 1 FROM pg_tables WHERE tablename IN ('images', 'image_totals')")
    piccolo(fresh, "forwards", "all")
    assert run_sql(fresh, "SELECT total FROM image_totals")[0][0] == 0


def test_the_albums_migration_can_be_reversed_and_replayed(database_url):
    run_sql(database_url, "DROP DATABASE IF EXISTS images_migration_test")
    run_sql(database_url, "CREATE DATABASE images_migration_test")
    fresh = database_url.replace("/images_test?", "/images_migration_test?")
    piccolo(fresh, "forwards", "all")
    albums = ("albums", "articles", "album_images")
    assert len(run_sql(fresh, "SELECT 1 FROM pg_tables WHERE tablename = ANY($1::text[])", list(albums))) == 3
    piccolo(fresh, "backwards", "albums", "--migration_id=all", "--auto_agree")
    assert not run_sql(fresh, "SELECT 1 FROM pg_tables WHERE tablename = ANY($1::text[])", list(albums))
    assert run_sql(fresh, "SELECT 1 FROM pg_tables WHERE tablename = 'images'")  # the images stay
    piccolo(fresh, "forwards", "all")
    indexes = {row[0] for row in run_sql(fresh, "SELECT indexname FROM pg_indexes WHERE tablename = 'album_images'")}
    assert {"album_images_album_newest", "album_images_article_position", "album_images_article_source"} <= indexes
