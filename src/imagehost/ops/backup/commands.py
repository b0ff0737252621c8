"""The operator's commands: `python -m imagehost backup` and `restore FILE [--yes]`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg

from imagehost.ops.backup.archive import UnpackedBackup
from imagehost.ops.backup.bucket import place_of
from imagehost.ops.backup.errors import BackupError, BackupInvalid, BucketNotEmpty, RestoreCancelled
from imagehost.ops.backup.make import make_backup
from imagehost.ops.backup.postgres import libpq_target
from imagehost.ops.backup.report import human_bytes
from imagehost.ops.backup.restore import QUARANTINE, restore_backup
from imagehost.settings import Settings
from imagehost.storage import object_store


def backup_command(settings: Settings) -> int:
    """Make one backup; its line in app.log (also on stdout) says what it holds. Exit code 1 on failure."""
    try:
        asyncio.run(make_backup(settings))
    except (BackupError, OSError, asyncpg.PostgresError) as failure:
        print(f"backup failed: {failure}", file=sys.stderr)
        return 1
    return 0


def _ask(unpacked: UnpackedBackup, settings: Settings) -> bool:
    manifest = unpacked.manifest
    target, _ = libpq_target(settings.database_url)
    objects = object_store(settings)
    files = (
        f"the files in {settings.images_dir} (files not in the backup are moved to "
        f"{settings.images_dir / QUARANTINE}, not deleted)"
        if objects is None
        else f"puts its files into {place_of(objects)}, which holds no images"
    )
    print(
        f"{unpacked.name} (made {manifest['created_at']}, ImageHost {manifest['app_version']}) is complete and sound: "
        f"{unpacked.image_rows} images, {manifest['file_count']} files ({human_bytes(manifest['file_bytes'])}).\n"
        f"Restoring replaces the database {target} and {files}."
    )
    if not sys.stdin.isatty():
        print("Not asked on a terminal: add --yes to restore without asking.", file=sys.stderr)
        return False
    return input("Restore it? [y/N] ").strip().lower() in {"y", "yes"}


def restore_command(settings: Settings, archive: Path, *, assume_yes: bool, trust: bool = False) -> int:
    """Restore `archive`; print the report. Exit code 1 when refused, cancelled, failed or not verified."""
    confirm = None if assume_yes else (lambda unpacked: _ask(unpacked, settings))
    try:
        report = asyncio.run(restore_backup(settings, archive, confirm=confirm, trust=trust))
    except (BackupInvalid, BucketNotEmpty) as refusal:
        print(f"restore refused: {refusal}\nNothing was changed.", file=sys.stderr)
        return 1
    except RestoreCancelled as cancelled:
        print(str(cancelled), file=sys.stderr)
        return 1
    except (BackupError, OSError, asyncpg.PostgresError) as failure:
        print(f"restore failed: {failure}", file=sys.stderr)
        return 1
    print("\n".join(report.lines()))
    return 1 if report.problems else 0
