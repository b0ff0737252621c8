"""A stored name from the database is never opened as a path unless it is one (finding 3 of issue 13).

A row whose stored_name is `../var/secret_key` (from a crafted backup, or anyone with database
access) must not make the service send that file, a restore must refuse a backup holding one, and
the database itself refuses such rows.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from imagehost.errors import ImageNotFound, StoredNameRefused
from imagehost.images.storage import STORED_NAME, ImageStore, is_stored_name
from imagehost.ops.consistency import run_check
from imagehost.settings import Settings
from tests.conftest import PROJECT_ROOT, png_bytes, run_sql, upload
from tests.ops.test_backup import cli, state, the_backup

SECRET = b"the-contents-of-var-secret-key"
TOKEN = "api-token-for-tests"
FORGED = "../var/secret_key"
CONSTRAINT = "images_stored_name_pattern"
MIGRATION = PROJECT_ROOT / "migrations" / "images" / "images_0009_stored_name_check.py"


def a_name(extension: str = "png") -> str:
    return "A" * 22 + "." + extension


@pytest.fixture
def ops_settings(settings, tmp_path):
    return replace(settings, backup_dir=tmp_path / "backups", api_tokens=(TOKEN,))


@pytest.fixture
def secret_file(settings) -> Path:
    """A file beside IMAGES_DIR that the service must never send: IMAGES_DIR/../var/secret_key."""
    path = settings.images_dir.parent / "var" / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(SECRET)
    return path


@contextmanager
def without_the_check(database_url: str):
    """Rows the constraint refuses, as someone with database access (or an old database) has them.
    The constraint comes back afterwards, once the forged rows are gone."""
    run_sql(database_url, f"ALTER TABLE images DROP CONSTRAINT IF EXISTS {CONSTRAINT}")
    try:
        yield
    finally:
        restore_the_check(database_url)


def restore_the_check(database_url: str) -> None:
    pattern = f"^{STORED_NAME.pattern}$"
    run_sql(database_url, f"DELETE FROM images WHERE stored_name !~ '{pattern}'")
    run_sql(database_url, f"ALTER TABLE images DROP CONSTRAINT IF EXISTS {CONSTRAINT}")
    run_sql(database_url, f"ALTER TABLE images ADD CONSTRAINT {CONSTRAINT} CHECK (stored_name ~ '{pattern}')")


def forge(database_url: str, image_id: int, stored_name: str) -> None:
    run_sql(database_url, "UPDATE images SET stored_name = $1 WHERE id = $2", stored_name, image_id)


# --- the store's own check ----------------------------------------------------------------------


def test_the_store_opens_only_stored_names(tmp_path, secret_file):
    store = ImageStore(tmp_path / "images")
    store.prepare()
    (store.root / a_name()).write_bytes(b"png")
    assert is_stored_name(a_name())
    assert store.existing_path(a_name()) == store.root / a_name()
    trailing_newline = a_name() + "\n"  # `^...$` with match() let this through
    for wrong in (FORGED, trailing_newline, "/etc/passwd", a_name("webp"), "", "A" * 22 + ".png/..", None):
        assert not is_stored_name(wrong), wrong
        with pytest.raises(StoredNameRefused) as refused:
            store.path_of(wrong)
        assert isinstance(refused.value, ImageNotFound)  # a 404 wherever HTTP meets it
        with pytest.raises(StoredNameRefused):
            store.thumbnail_path(160, wrong)
        assert store.existing_path(wrong) is None
        assert store.thumbnail_sizes_present(wrong) == []
    assert "\n" not in refused.value.log_line()  # the name is shown escaped: no forged log line


# --- the database's own check -------------------------------------------------------------------


def test_the_database_refuses_rows_that_name_no_stored_file(clean_database):
    insert = (
        "INSERT INTO images (stored_name, original_name, size_bytes, file_format, sha256, delete_key_hash)"
        " VALUES ($1, 'x.png', 1, 'PNG', '', '')"
    )
    run_sql(clean_database, insert, a_name())
    for wrong in (FORGED, a_name() + "\n", "x.png", a_name("html")):
        with pytest.raises(asyncpg.CheckViolationError):
            run_sql(clean_database, insert, wrong)
    assert run_sql(clean_database, "SELECT count(*) FROM images")[0][0] == 1
    # The migration's frozen pattern is the store's: a new format needs a new migration.
    spec = importlib.util.spec_from_file_location("stored_name_check", MIGRATION)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert migration.PATTERN.replace("{{", "{").replace("}}", "}") == f"^{STORED_NAME.pattern}$"


def test_rows_that_break_the_pattern_before_the_migration_do_not_stop_it(database_url, tmp_path):
    """Chosen: the constraint is added NOT VALID, the rows are named on stderr, `just check` reports them."""
    run_sql(database_url, "DROP DATABASE IF EXISTS stored_names_migration_test")
    run_sql(database_url, "CREATE DATABASE stored_names_migration_test")
    fresh = database_url.replace("/images_test?", "/stored_names_migration_test?")
    env = {**os.environ, "DATABASE_URL": fresh, "PYTHONPATH": f"{PROJECT_ROOT / 'src'}{os.pathsep}{PROJECT_ROOT}"}
    piccolo = [os.path.join(os.path.dirname(sys.executable), "piccolo"), "migrations", "forwards"]

    def migrate(*arguments: str) -> subprocess.CompletedProcess:
        done = subprocess.run([*piccolo, *arguments], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    migrate("images", "--migration_id=2026-11-24T02:00:00:000000")  # up to images_0008
    run_sql(
        fresh,
        "INSERT INTO images (stored_name, original_name, size_bytes, file_format, sha256, delete_key_hash)"
        " VALUES ($1, 'x', 1, 'PNG', '', ''), ($2, 'y', 1, 'PNG', '', '')",
        a_name(),
        FORGED,
    )
    done = migrate("all")
    assert "1 rows of images hold a stored name that is not one" in done.stdout + done.stderr
    assert repr(FORGED) in done.stdout + done.stderr
    validated = run_sql(fresh, "SELECT convalidated FROM pg_constraint WHERE conname = $1", CONSTRAINT)
    assert [row[0] for row in validated] == [False]
    with pytest.raises(asyncpg.CheckViolationError):  # it holds for new rows at once
        run_sql(
            fresh,
            "INSERT INTO images (stored_name, original_name, size_bytes, file_format, sha256, delete_key_hash)"
            " VALUES ('../x', 'z', 1, 'PNG', '', '')",
        )
    # The check names the row; a repair that removes it makes the constraint whole.
    settings = Settings(database_url=fresh, images_dir=tmp_path / "images", log_dir=tmp_path / "logs")
    (settings.images_dir / a_name()).parent.mkdir(parents=True)
    (settings.images_dir / a_name()).write_bytes(b"x")
    assert asyncio.run(run_check(settings)).counts.get("bad_name") == 1
    assert [f.kind for f in asyncio.run(run_check(settings, "remove")).findings if f.action == "removed"] == [
        "bad_name"
    ]
    validated = run_sql(fresh, "SELECT convalidated FROM pg_constraint WHERE conname = $1", CONSTRAINT)
    assert [row[0] for row in validated] == [True]


# --- HTTP: the download and the conversion API ------------------------------------------------


def test_a_forged_row_is_answered_404_and_its_file_never_sent(make_client, ops_settings, secret_file):
    client = make_client(api_tokens=(TOKEN,))
    image = upload(client, png_bytes()).json()
    assert client.get(f"/download/{image['id']}").status_code == 200
    with without_the_check(ops_settings.database_url):
        forge(ops_settings.database_url, image["id"], FORGED)
        assert (ops_settings.images_dir / FORGED).read_bytes() == SECRET  # what the old code opened
        answers = {
            "download": client.get(f"/download/{image['id']}"),
            "api": client.get(f"/api/images/{image['id']}", headers={"Authorization": f"Bearer {TOKEN}"}),
        }
        accel = make_client(api_tokens=(TOKEN,), accel_downloads=True)
        answers["download with X-Accel"] = accel.get(f"/download/{image['id']}")
        for route, answer in answers.items():
            assert answer.status_code == 404, (route, answer.status_code, answer.headers)
            assert SECRET not in answer.content, route
            assert "x-accel-redirect" not in answer.headers, route
    log = (ops_settings.log_dir / "app.log").read_text()
    assert f"refused to open {FORGED!r}: not a stored name" in log


# --- restore ------------------------------------------------------------------------------------


def backup_with_forged_rows(settings, client) -> tuple[Path, list[int]]:
    """A backup made for real by `python -m imagehost backup` from a database holding forged rows;
    its manifest is whole and sound. The current data then goes back to what it was."""
    images = [upload(client, png_bytes(40 + number, 30)).json() for number in range(3)]
    with without_the_check(settings.database_url):
        forge(settings.database_url, images[0]["id"], FORGED)
        forge(settings.database_url, images[1]["id"], images[1]["filename"] + "\n")
        made = cli(settings, "backup")
        assert made.returncode == 0, made.stderr
    return the_backup(settings), [image["id"] for image in images]


def test_a_restore_refuses_a_backup_with_forged_rows_whatever_its_manifest_says(make_client, ops_settings):
    settings = ops_settings
    client = make_client()
    archive, _ = backup_with_forged_rows(settings, client)
    folder = archive.name.removesuffix(".tar.gz")
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile(f"{folder}/manifest.json"))
    assert manifest["database"]["rows"]["images"] == 3  # the manifest itself has nothing to say against it
    upload(client, png_bytes(90, 90))  # the data differs from the backup's: a restore would show
    before = state(settings)

    try:
        result = cli(settings, "restore", str(archive), "--yes")
    finally:
        restore_the_check(settings.database_url)  # should a restore have let the dump's schema in

    assert result.returncode == 1, result.stdout + result.stderr
    assert "restore refused" in result.stderr and "Nothing was changed." in result.stderr
    assert "2 image rows whose stored name is not one" in result.stderr
    assert repr(FORGED) in result.stderr and "\\\\n" in result.stderr  # the newline, as the dump has it
    assert "verified" not in result.stdout
    assert state(settings) == before


def test_the_database_load_itself_refuses_forged_rows(make_client, ops_settings, tmp_path):
    """The last line, inside the restore's transaction: whatever a dump does, no forged row commits."""
    from imagehost.ops.backup import BackupError, UnpackedBackup, find_pg_tool
    from imagehost.ops.backup.restore import restore_database

    settings = ops_settings
    archive, _ = backup_with_forged_rows(settings, make_client())
    folder = archive.name.removesuffix(".tar.gz")
    with tarfile.open(archive) as tar:
        dump = tmp_path / "database.dump"
        dump.write_bytes(tar.extractfile(f"{folder}/database.dump").read())
        made_with = json.load(tar.extractfile(f"{folder}/manifest.json"))["database"]["pg_dump_version"]
    before = state(settings)
    unpacked = UnpackedBackup(manifest={}, dump=dump, files_root=tmp_path)
    try:
        with pytest.raises(BackupError, match="stored name is not one"):
            asyncio.run(restore_database(settings.database_url, unpacked, find_pg_tool("pg_restore", made_with), []))
    finally:
        restore_the_check(settings.database_url)
    assert state(settings) == before


# --- the consistency check ----------------------------------------------------------------------


def test_the_check_reports_forged_rows_and_a_removing_repair_removes_them(make_client, ops_settings, secret_file):
    settings = ops_settings
    client = make_client()
    images = [upload(client, png_bytes(40 + number, 30)).json() for number in range(2)]
    client.__exit__(None, None, None)  # the check connects on its own, as `just check` does
    with without_the_check(settings.database_url):
        forge(settings.database_url, images[0]["id"], FORGED)
        found = asyncio.run(run_check(settings))
        assert found.counts == {"bad_name": 1}, found.counts  # not "row without its file"
        assert f"#{images[0]['id']} {FORGED!r}" in found.findings[0].describe()
        kept = asyncio.run(run_check(settings, "mark"))
        assert [(f.kind, f.action) for f in kept.findings] == [("bad_name", "left")] and kept.exit_code == 1
        removed = asyncio.run(run_check(settings, "remove"))
        assert [(f.kind, f.action) for f in removed.findings] == [("bad_name", "removed")]
        assert removed.exit_code == 0
        assert not run_sql(settings.database_url, "SELECT 1 FROM images WHERE id = $1", images[0]["id"])
    assert secret_file.read_bytes() == SECRET  # never opened, never moved
