"""What goes wrong with a backup or a restore, for the operator."""

from __future__ import annotations


class BackupError(Exception):
    """A backup or restore could not be done; the message says why, for the operator."""


class BackupInvalid(BackupError):
    """The backup file is corrupt, partial or not a backup: it is refused and nothing is changed."""


class RestoreCancelled(BackupError):
    """The operator said no; nothing was changed."""


class BackupUntrusted(BackupInvalid):
    """Sound, but not signed with this installation's BACKUP_SIGNING_KEY: restored only with --trust."""


class BucketNotEmpty(BackupError):
    """STORAGE=s3: the bucket already holds image objects, and a restore goes only into one without any.
    Nothing was changed."""
