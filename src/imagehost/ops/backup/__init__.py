"""Backups and restore of both halves of the data: the database (pg_dump) and the files of IMAGES_DIR,
or with STORAGE=s3 the objects of the bucket under S3_PREFIX (`bucket`), in the same format.

A backup is one file, BACKUP_DIR/backup_YYYY-MM-DD_HHMMSS.tar.gz (UTC), holding under one folder
of the same name:

    database.dump    pg_dump --format=custom, taken inside an exported snapshot
    images/...       every file of IMAGES_DIR (originals, thumbs/<size>/<name>.webp), hidden folders left out;
                     with STORAGE=s3 every object named so (streamed from the bucket), other keys left out
    manifest.json    written last: every file with its size and SHA-256, the dump's checksum, row counts

One file, because it is copied off-site, checksummed and renamed as a whole, and a truncated copy is
detectable (gzip's end marker and CRC, and the manifest is the last member). gzip level 1, because
the images and the dump are compressed already: the level buys nothing but CPU time.

A backup is written as `.backup_....tar.gz.partial` and renamed when it is complete, so nothing
half-made ever carries a backup's name. A restore first unpacks and checks everything into a
staging folder inside IMAGES_DIR/.staging and changes nothing until the whole backup has proved sound.

The modules, one job each: `archive` (the file's format: members, manifest, unpacking it whole),
`folder` (BACKUP_DIR: names, listing, pruning, the lock), `postgres` (pg_dump, pg_restore, psql),
`bucket` (the objects of STORAGE=s3: streamed into a backup, a restore into a bucket without images),
`make`, `restore`, `report` (what they did, in words) and `commands` (the command line).
"""

from imagehost.ops.backup.archive import UnpackedBackup, unpack_verified
from imagehost.ops.backup.commands import backup_command, restore_command
from imagehost.ops.backup.errors import BackupError, BackupInvalid, BucketNotEmpty, RestoreCancelled
from imagehost.ops.backup.folder import BackupFile, list_backups, prune_backups
from imagehost.ops.backup.make import BackupResult, make_backup
from imagehost.ops.backup.postgres import find_pg_tool
from imagehost.ops.backup.report import RestoreReport, human_bytes
from imagehost.ops.backup.restore import restore_backup

__all__ = [
    "BackupError",
    "BackupFile",
    "BackupInvalid",
    "BackupResult",
    "BucketNotEmpty",
    "RestoreCancelled",
    "RestoreReport",
    "UnpackedBackup",
    "backup_command",
    "find_pg_tool",
    "human_bytes",
    "list_backups",
    "make_backup",
    "prune_backups",
    "restore_backup",
    "restore_command",
    "unpack_verified",
]
