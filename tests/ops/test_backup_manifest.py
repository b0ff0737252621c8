"""The backup manifest names the PostgreSQL the dump came from as the server itself does."""

from __future__ import annotations

import json
import tarfile
from dataclasses import replace

from tests.conftest import run_sql
from tests.ops.test_backup import cli, the_backup


def test_the_manifest_records_the_servers_full_version(settings, tmp_path):
    settings = replace(settings, backup_dir=tmp_path / "backups")
    settings.images_dir.mkdir(parents=True, exist_ok=True)
    done = cli(settings, "backup")
    assert done.returncode == 0, done.stderr
    archive = the_backup(settings)
    with tarfile.open(archive) as tar:
        manifest = next(m for m in tar.getmembers() if m.name.endswith("/manifest.json"))
        recorded = json.load(tar.extractfile(manifest))["database"]["server_version"]
    server = run_sql(settings.database_url, "SHOW server_version")[0][0].split()[0]  # "17.12 (Debian ...)"
    assert recorded == server  # not "17.0": asyncpg's `minor` is 0 for every release since 10
