"""BACKUP_DIR: the names of complete backups, listing and pruning them, one backup or restore at a time."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from imagehost.ops.backup.errors import BackupError

NAME_PATTERN = re.compile(r"^backup_(\d{4}-\d\d-\d\d_\d{6})\.tar\.gz$")
NAME_TIME_FORMAT = "%Y-%m-%d_%H%M%S"
SUFFIX = ".tar.gz"
LOCK = ".lock"


@dataclass(frozen=True)
class BackupFile:
    path: Path
    made_at: dt.datetime  # UTC, from the name

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(SUFFIX)


def list_backups(backup_dir: Path) -> list[BackupFile]:
    """Complete backups in `backup_dir`, oldest first (partial ones are hidden and never listed)."""
    if not backup_dir.is_dir():
        return []
    found = []
    for path in backup_dir.iterdir():
        match = NAME_PATTERN.match(path.name)
        if match and path.is_file():
            try:
                made_at = dt.datetime.strptime(match.group(1), NAME_TIME_FORMAT).replace(tzinfo=dt.UTC)
            except ValueError:
                continue  # looks like ours but is no date: not ours to list or prune
            found.append(BackupFile(path, made_at))
    return sorted(found, key=lambda backup: backup.made_at)


def prune_backups(backup_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` complete backups; returns what was deleted."""
    backups = list_backups(backup_dir)
    doomed = [backup.path for backup in backups[: max(0, len(backups) - keep)]]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


@contextlib.contextmanager
def exclusive(backup_dir: Path) -> Iterator[None]:
    """One backup or restore at a time (the schedule and an operator may both start one)."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    with (backup_dir / LOCK).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"another backup or restore is running (lock {backup_dir / LOCK})") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
