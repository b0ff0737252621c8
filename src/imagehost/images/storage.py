"""The file half of an image: atomic writes into IMAGES_DIR, removal, and start-up clean-up.

Files are first written in IMAGES_DIR/.staging (same file system, so rename is atomic), fsynced,
renamed into place, and the folder is fsynced. A crash leaves debris only in .staging.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

STAGING = ".staging"
# A stored name: 22 URL-safe characters (128 random bits) and the extension of the real format.
STORED_NAME = re.compile(r"^[A-Za-z0-9_-]{16,64}\.(jpg|png|gif)$")


def new_stored_name(extension: str) -> str:
    return secrets.token_urlsafe(16) + extension


def is_stored_name(name: str) -> bool:
    return bool(STORED_NAME.match(name))


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging = root / STAGING

    def prepare(self) -> int:
        """Create the folders and remove stray temporary files of an earlier run. Returns how many."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(exist_ok=True)
        removed = 0
        for leftover in self.staging.iterdir():
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
                removed += 1
        return removed

    def path_of(self, stored_name: str) -> Path:
        if not is_stored_name(stored_name):
            raise ValueError(f"not a stored name: {stored_name!r}")
        return self.root / stored_name

    def write(self, stored_name: str, content: bytes) -> Path:
        """Write the whole file or nothing. Blocking: call from a worker thread."""
        final = self.path_of(stored_name)
        temporary = self.staging / f"{stored_name}.{secrets.token_hex(4)}.part"
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(content)
                while view:
                    written = os.write(descriptor, view)
                    view = view[written:]
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.rename(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self._sync_folder()
        return final

    def remove(self, stored_name: str) -> None:
        self.path_of(stored_name).unlink(missing_ok=True)
        self._sync_folder()

    def writable(self) -> bool:
        return self.root.is_dir() and os.access(self.root, os.W_OK) and os.access(self.staging, os.W_OK)

    def _sync_folder(self) -> None:
        descriptor = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
