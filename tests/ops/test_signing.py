"""Backups signed with BACKUP_SIGNING_KEY: a restore tells a backup made here from one made elsewhere,
asks --trust for the others, and a lost key never makes a backup unrestorable."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import replace

import pytest

from tests.conftest import run_sql
from tests.ops.test_backup import cli, state, upload_some

KEY = "a-signing-key-for-tests"


@pytest.fixture
def ops_settings(settings, tmp_path):
    return replace(settings, backup_dir=tmp_path / "backups")


def backup(settings, key: str | None) -> object:
    before = set(settings.backup_dir.glob("backup_*.tar.gz")) if settings.backup_dir.is_dir() else set()
    made = cli(settings, "backup", **({"BACKUP_SIGNING_KEY": key} if key else {}))
    assert made.returncode == 0, made.stderr
    (archive,) = set(settings.backup_dir.glob("backup_*.tar.gz")) - before
    return archive


def members(archive) -> list[str]:
    with tarfile.open(archive) as tar:
        return [member.name.split("/", 1)[1] for member in tar if member.isfile()]


def test_only_backups_signed_here_restore_without_trust(make_client, ops_settings):
    settings = ops_settings
    client = make_client()
    upload_some(client, 2)
    signed = backup(settings, KEY)
    unsigned = backup(settings, None)
    foreign = backup(settings, "someone-else's-key")
    assert members(signed)[-2:] == ["manifest.hmac", "manifest.json"]  # the manifest stays the last member
    assert "manifest.hmac" not in members(unsigned)
    run_sql(settings.database_url, "DELETE FROM images WHERE id = 1")
    before = state(settings)

    for archive, why in ((unsigned, "is not signed"), (foreign, "is signed with another key")):
        refused = cli(settings, "restore", str(archive), "--yes", BACKUP_SIGNING_KEY=KEY)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "restore refused" in refused.stderr and why in refused.stderr and "--trust" in refused.stderr
        assert "Nothing was changed." in refused.stderr
        assert state(settings) == before

    restored = cli(settings, "restore", str(signed), "--yes", BACKUP_SIGNING_KEY=KEY)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "signature: signed with this installation's BACKUP_SIGNING_KEY" in restored.stdout
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 2

    # A manifest changed after signing is no longer this installation's.
    tampered = settings.backup_dir.parent / "tampered.tar.gz"
    with tarfile.open(signed) as source, tarfile.open(tampered, "w:gz") as out:
        for member in source:
            content = source.extractfile(member).read() if member.isfile() else None
            if member.name.endswith("/manifest.json"):
                manifest = json.loads(content)
                manifest["app_version"] = "someone's"
                content = json.dumps(manifest).encode()
                member.size = len(content)
            out.addfile(member, None if content is None else io.BytesIO(content))
    refused = cli(settings, "restore", str(tampered), "--yes", BACKUP_SIGNING_KEY=KEY)
    assert refused.returncode == 1 and "is signed with another key" in refused.stderr


def test_with_trust_or_without_the_key_every_backup_restores(make_client, ops_settings):
    settings = ops_settings
    upload_some(make_client(), 2)
    foreign = backup(settings, "a-key-since-lost")
    run_sql(settings.database_url, "DELETE FROM images")

    trusted = cli(settings, "restore", str(foreign), "--yes", "--trust", BACKUP_SIGNING_KEY=KEY)
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert "restored because of --trust" in trusted.stdout
    assert "restored because of --trust" in (settings.log_dir / "app.log").read_text()
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 2

    run_sql(settings.database_url, "DELETE FROM images")
    unchecked = cli(settings, "restore", str(foreign), "--yes")  # BACKUP_SIGNING_KEY unset: as before
    assert unchecked.returncode == 0, unchecked.stdout + unchecked.stderr
    assert "signature: not checked (BACKUP_SIGNING_KEY is not set)" in unchecked.stdout
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 2


def test_a_restore_keeps_this_installations_last_operations_and_records_itself(make_client, ops_settings):
    settings = ops_settings
    upload_some(make_client(), 1)
    first = backup(settings, None)
    second = backup(settings, None)  # recorded as the last backup after `first` was made
    restored = cli(settings, "restore", str(first), "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    rows = {row["kind"]: row for row in run_sql(settings.database_url, "SELECT * FROM operations_state")}
    assert second.name in rows["backup"]["detail"]  # not the older state the dump of `first` held
    assert rows["restore"]["outcome"] == "ok" and first.name.removesuffix(".tar.gz") in rows["restore"]["detail"]
