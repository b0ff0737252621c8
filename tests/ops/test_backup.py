"""Backups and restore as an operator runs them (`python -m imagehost backup`, `restore`), and the schedule."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import psycopg_pool
import pytest

from imagehost.logging import configure_logging
from imagehost.ops.backup import list_backups, make_backup
from imagehost.ops.scheduler import BACKUP, RETRY_SECONDS, SCRUB, Schedule
from tests.conftest import PROJECT_ROOT, png_bytes, run_sql, upload

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC).timestamp()
DAY = 86400


@pytest.fixture
def ops_settings(settings, tmp_path):
    return replace(settings, backup_dir=tmp_path / "backups")


def cli_environment(settings, **env: str) -> dict[str, str]:
    """The settings as an operator's command (`python -m imagehost ...`) finds them."""
    return {
        **os.environ,
        "PYTHONPATH": f"{PROJECT_ROOT / 'src'}{os.pathsep}{PROJECT_ROOT}",
        "DATABASE_URL": settings.database_url,
        "IMAGES_DIR": str(settings.images_dir),
        "LOG_DIR": str(settings.log_dir),
        "BACKUP_DIR": str(settings.backup_dir),
        **env,
    }


def cli(settings, *arguments: str, **env: str) -> subprocess.CompletedProcess:
    """The command as an operator types it, with the settings in the environment."""
    environment = cli_environment(settings, **env)
    return subprocess.run(
        [sys.executable, "-m", "imagehost", *arguments],
        env=environment,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def files_on_disk(images_dir: Path) -> dict[str, str]:
    """Every stored file (originals and thumbnails, not the hidden work folders) and its SHA-256."""
    found = {}
    for path in sorted(images_dir.rglob("*")):
        relative = path.relative_to(images_dir)
        if path.is_file() and not relative.parts[0].startswith("."):
            found[relative.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def all_rows(database_url: str) -> dict[str, list[dict]]:
    return {
        table: [dict(row) for row in run_sql(database_url, f"SELECT * FROM {table} ORDER BY id")]
        for table in ("images", "api_tokens")
    }


def state(settings) -> tuple[dict, dict]:
    return files_on_disk(settings.images_dir), all_rows(settings.database_url)


def add_token(database_url: str) -> None:
    run_sql(
        database_url,
        "INSERT INTO api_tokens (owner_sub, owner_name, owner_role, name, token_hash, prefix, created_at) "
        "VALUES ('sub-1', 'Ada', 2, 'laptop', $1, 'ih_abc', now())",
        hashlib.sha256(b"token").hexdigest(),
    )


def upload_some(client, count: int) -> list[dict]:
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (200, 30, 200)]
    bodies = []
    for number in range(count):
        response = upload(client, png_bytes(200 + number, 150, colours[number % len(colours)]), f"p{number}.png")
        assert response.status_code == 201, response.text
        bodies.append(response.json())
    return bodies


def delete(client, body: dict) -> None:
    response = client.delete(body["delete_url"].replace("http://testserver.local", ""))
    assert response.status_code == 200, response.text


def the_backup(settings) -> Path:
    backups = list_backups(settings.backup_dir)
    assert len(backups) == 1, backups
    return backups[0].path


def test_restore_drill_brings_back_every_row_and_file_byte_identical(make_client, ops_settings):
    settings = ops_settings
    client = make_client()
    bodies = upload_some(client, 6)
    add_token(settings.database_url)
    # A rate limit's count (web/stores.py), as a running app keeps writing them: not backed up.
    count_row = (
        "INSERT INTO shared_store (namespace, key, value, expires_at)"
        " VALUES ('imagehost/upload_rate_limit', $1, 'x', now() + interval '1 minute')"
    )
    run_sql(settings.database_url, count_row, "before")
    files_before, rows_before = state(settings)
    assert any(name.startswith("thumbs/") for name in files_before)

    made = cli(settings, "backup")
    assert made.returncode == 0, made.stderr
    archive = the_backup(settings)
    assert archive.name.startswith("backup_") and archive.name.endswith(".tar.gz")
    log = (settings.log_dir / "app.log").read_text()
    assert f"] Backup: {archive} made: 6 images, 1 API token, {len(files_before)} files" in log
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile(f"{archive.name.removesuffix('.tar.gz')}/manifest.json"))
    assert {entry["path"]: entry["sha256"] for entry in manifest["files"]} == files_before
    assert manifest["database"]["rows"]["images"] == 6 and manifest["database"]["rows"]["api_tokens"] == 1
    assert "shared_store" not in manifest["database"]["rows"]
    assert manifest["app_version"] and len(manifest["database"]["sha256"]) == 64

    # Disaster: two deleted through the API, two originals damaged, a thumbnail lost, strangers added.
    delete(client, bodies[0])
    delete(client, bodies[1])
    overwritten = settings.images_dir / bodies[2]["filename"]
    overwritten.write_bytes(b"\0" * overwritten.stat().st_size)
    truncated = settings.images_dir / bodies[3]["filename"]
    truncated.write_bytes(truncated.read_bytes()[:100])
    thumbnail = next(settings.images_dir.glob(f"thumbs/*/{bodies[4]['filename']}.webp"))
    thumbnail.unlink()
    late = upload(client, png_bytes(64, 64, (1, 2, 3)), "late.png").json()  # after the backup: not in it
    stray = settings.images_dir / "ZZZZZZZZZZZZZZZZZZZZZZ.png"
    stray.write_bytes(b"not ours")
    run_sql(settings.database_url, "DELETE FROM api_tokens")
    run_sql(settings.database_url, "CREATE TABLE from_a_newer_version (id int)")  # unknown to the backup
    assert state(settings) != (files_before, rows_before)
    run_sql(settings.database_url, count_row, "while the app kept counting")

    restored = cli(settings, "restore", str(archive), "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "verified: every file matches the manifest, every row has its file" in restored.stdout

    assert files_on_disk(settings.images_dir) == files_before
    assert all_rows(settings.database_url) == rows_before
    assert run_sql(settings.database_url, "SELECT to_regclass('from_a_newer_version')")[0][0] is None
    assert run_sql(settings.database_url, "SELECT count(*) FROM shared_store")[0][0] == 0  # the table, empty
    # Nothing was deleted: what the backup does not hold, and what it replaced, is in quarantine.
    quarantine = next((settings.images_dir / ".quarantine").iterdir())
    kept_aside = files_on_disk(quarantine)
    assert {late["filename"], stray.name, bodies[2]["filename"], bodies[3]["filename"]} <= set(kept_aside)
    assert (quarantine / stray.name).read_bytes() == b"not ours"
    assert not list((settings.images_dir / ".staging").iterdir())
    assert "] Restore: " in (settings.log_dir / "app.log").read_text()
    # The app kept running through it, and serves the restored catalogue and files.
    assert client.get("/images-list").json()["pagination"]["total_items"] == 6
    assert (
        client.get(f"/images/{bodies[3]['filename']}").content
        == (settings.images_dir / bodies[3]["filename"]).read_bytes()
    )


def rewrite(archive: Path, target: Path, change) -> None:
    """Copy a backup member by member; `change(name, content)` returns new content, or None to leave it out."""
    with tarfile.open(archive) as source, tarfile.open(target, "w:gz") as out:
        for member in source:
            content = change(member.name, source.extractfile(member).read())
            if content is None:
                continue
            member.size = len(content)
            out.addfile(member, io.BytesIO(content))


def test_a_corrupt_or_partial_backup_is_refused_and_nothing_changes(make_client, ops_settings, tmp_path):
    settings = ops_settings
    client = make_client()
    bodies = upload_some(client, 3)
    assert cli(settings, "backup").returncode == 0
    archive = the_backup(settings)
    delete(client, bodies[0])  # the current data differs from the backup: a restore would show
    before = state(settings)
    original = bodies[1]["filename"]

    def flip_a_byte(name: str, content: bytes) -> bytes:
        if name.endswith(f"/images/{original}"):
            return content[:-1] + bytes([content[-1] ^ 1])
        return content

    def wrong_checksum_in_manifest(name: str, content: bytes) -> bytes:
        if name.endswith("/manifest.json"):
            manifest = json.loads(content)
            manifest["files"][0]["sha256"] = "0" * 64
            return json.dumps(manifest).encode()
        return content

    def dump_damaged(name: str, content: bytes) -> bytes:
        return content[:-10] + b"0123456789" if name.endswith("/database.dump") else content

    def without_manifest(name: str, content: bytes) -> bytes | None:
        return None if name.endswith("/manifest.json") else content

    def without_a_file(name: str, content: bytes) -> bytes | None:
        return None if name.endswith(f"/images/{original}") else content

    cases = {}
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    cases[truncated] = "truncated or damaged"
    garbage = tmp_path / "not-a-backup.tar.gz"
    garbage.write_bytes(gzip.compress(b"hello " * 1000))
    cases[garbage] = "truncated or damaged"
    for change, message in (
        (flip_a_byte, f"{original} has the wrong checksum"),
        (wrong_checksum_in_manifest, "has the wrong checksum"),
        (dump_damaged, "database.dump has the wrong size or checksum"),
        (without_manifest, "has no manifest.json: the backup is partial"),
        (without_a_file, f"{original} is missing"),
    ):
        target = tmp_path / f"{change.__name__}.tar.gz"
        rewrite(archive, target, change)
        cases[target] = message

    for bad, message in cases.items():
        result = cli(settings, "restore", str(bad), "--yes")
        assert result.returncode == 1, (bad.name, result.stdout, result.stderr)
        assert "restore refused" in result.stderr and message in result.stderr, (bad.name, result.stderr)
        assert "Nothing was changed." in result.stderr
        assert state(settings) == before, bad.name
    assert not (settings.images_dir / ".quarantine").exists()
    assert "Restore: refused" in (settings.log_dir / "app.log").read_text()

    # Without --yes and without a terminal to ask on, nothing happens either.
    unasked = cli(settings, "restore", str(archive))
    assert unasked.returncode == 1 and "--yes" in unasked.stderr
    assert state(settings) == before


def test_backups_beyond_backup_keep_are_pruned_and_partial_ones_removed(make_client, ops_settings):
    settings = replace(ops_settings, backup_keep=3)
    make_client()
    settings.backup_dir.mkdir()
    old = [settings.backup_dir / f"backup_2020-01-0{day}_120000.tar.gz" for day in range(1, 6)]
    for path in old:
        path.write_bytes(b"an old backup")
    leftover = settings.backup_dir / ".backup_2020-01-06_120000.tar.gz.abcd.partial"
    leftover.write_bytes(b"killed half-way")
    unrelated = settings.backup_dir / "notes.txt"
    unrelated.write_text("mine")

    configure_logging(settings.log_dir)
    result = asyncio.run(make_backup(settings))

    assert [backup.path for backup in list_backups(settings.backup_dir)] == [old[3], old[4], result.path]
    assert sorted(result.pruned) == old[:3]
    assert not leftover.exists() and unrelated.exists()
    assert "pruned 3 old" in (settings.log_dir / "app.log").read_text()


def test_one_scheduler_cycle_at_a_time_with_a_fake_clock(make_client, ops_settings):
    settings = replace(ops_settings, backup_keep=2, backup_interval_seconds=DAY, scrub_interval_seconds=7 * DAY)
    upload_some(make_client(), 1)
    configure_logging(settings.log_dir)
    scrubs: list[float] = []

    async def fake_scrub(_settings, now: float) -> None:
        scrubs.append(now)

    async def broken_scrub(_settings, now: float) -> None:
        raise RuntimeError("disk on fire")

    async def run() -> None:
        async with psycopg_pool.AsyncConnectionPool(settings.database_url, min_size=1, max_size=1, open=False) as pool:
            schedule = Schedule(settings, pool, scrub_job=fake_scrub)
            assert await schedule.run_due(T0) == [BACKUP, SCRUB]  # nothing ever ran: both at once
            assert [backup.name for backup in list_backups(settings.backup_dir)] == ["backup_2030-01-01_000000"]
            assert await schedule.run_due(T0 + 3600) == []
            assert await schedule.run_due(T0 + DAY) == [BACKUP]
            assert await schedule.run_due(T0 + 2 * DAY) == [BACKUP]
            names = [backup.name for backup in list_backups(settings.backup_dir)]
            assert names == ["backup_2030-01-02_000000", "backup_2030-01-03_000000"]  # BACKUP_KEEP=2
            assert scrubs == [T0]

            # A restart (or another scheduler) reads when each job last ran from PostgreSQL: nothing is repeated.
            restarted = Schedule(settings, pool, scrub_job=fake_scrub)
            assert await restarted.run_due(T0 + 2 * DAY + 60) == []
            assert await restarted.run_due(T0 + 7 * DAY) == [BACKUP, SCRUB]

            # A failing job is logged and retried later, not in a loop.
            failing = Schedule(settings, pool, scrub_job=broken_scrub)
            assert await failing.run_due(T0 + 14 * DAY) == [BACKUP]
            assert failing.due_at(SCRUB) == T0 + 14 * DAY + RETRY_SECONDS
            assert await failing.run_due(T0 + 14 * DAY + 60) == []

    asyncio.run(run())
    log = (settings.log_dir / "app.log").read_text()
    assert "Schedule: scrub failed: RuntimeError: disk on fire" in log
    assert "] Backup: " in log


def test_a_database_load_that_fails_half_way_changes_nothing(make_client, ops_settings, tmp_path):
    """The schema is dropped and reloaded in one transaction, committed only once pg_restore finished well."""
    from imagehost.ops.backup import BackupError, UnpackedBackup, find_pg_tool
    from imagehost.ops.backup.restore import restore_database

    settings = ops_settings
    upload_some(make_client(), 2)
    assert cli(settings, "backup").returncode == 0
    archive = the_backup(settings)
    folder = archive.name.removesuffix(".tar.gz")
    with tarfile.open(archive) as tar:
        dump = tar.extractfile(f"{folder}/database.dump").read()
        made_with = json.load(tar.extractfile(f"{folder}/manifest.json"))["database"]["pg_dump_version"]
    run_sql(settings.database_url, "DELETE FROM images WHERE id = 1")
    before = all_rows(settings.database_url)
    pg_restore = find_pg_tool("pg_restore", made_with)
    # Cut short at the end, pg_restore has already sent the schema (after our DROP SCHEMA) when it fails.
    for name, content in (("cut.dump", dump[:-30]), ("garbage.dump", b"PGDMP" + bytes(100))):
        broken = tmp_path / name
        broken.write_bytes(content)
        unpacked = UnpackedBackup(manifest={}, dump=broken, files_root=tmp_path)
        with pytest.raises(BackupError, match="the database is unchanged"):
            asyncio.run(restore_database(settings.database_url, unpacked, pg_restore, []))
        assert all_rows(settings.database_url) == before, name


def test_backup_settings_from_the_environment():
    from imagehost.settings import Settings, SettingsError

    settings = Settings.from_env(
        {"BACKUP_DIR": "/srv/backups", "BACKUP_INTERVAL": "12h", "BACKUP_KEEP": "3", "SCRUB_INTERVAL": "0"}
    )
    assert settings.backup_dir == Path("/srv/backups")
    assert (settings.backup_interval_seconds, settings.backup_keep, settings.scrub_interval_seconds) == (43200, 3, 0)
    defaults = Settings.from_env({})
    assert (defaults.backup_interval_seconds, defaults.backup_keep, defaults.scrub_interval_seconds) == (
        DAY,
        7,
        7 * DAY,
    )
    assert Settings.from_env({"BACKUP_INTERVAL": "2"}).backup_interval_seconds == 2 * 3600  # bare: hours
    assert Settings.from_env({"SCRUB_INTERVAL": "1w"}).scrub_interval_seconds == 7 * DAY
    assert Settings.from_env({"BACKUP_INTERVAL": "30m"}).backup_interval_seconds == 1800
    for wrong in ({"BACKUP_INTERVAL": "soon"}, {"BACKUP_INTERVAL": "10s"}, {"BACKUP_KEEP": "0"}):
        with pytest.raises(SettingsError):
            Settings.from_env(wrong)
