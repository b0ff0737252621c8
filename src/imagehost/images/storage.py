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
THUMBS = "thumbs"
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
        (self.root / THUMBS).mkdir(exist_ok=True)
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

    def thumbnail_path(self, size: int, stored_name: str) -> Path:
        """Thumbnails live at thumbs/<size>/<stored name>.webp, a URL nginx can serve as it is."""
        self.path_of(stored_name)  # validates the name
        return self.root / THUMBS / str(int(size)) / f"{stored_name}.webp"

    def thumbnail_sizes_present(self, stored_name: str) -> list[int]:
        folder = self.root / THUMBS
        if not folder.is_dir():
            return []
        return sorted(
            int(size.name)
            for size in folder.iterdir()
            if size.name.isdigit() and (size / f"{stored_name}.webp").is_file()
        )

    def write_image(self, stored_name: str, content: bytes, thumbnails: dict[int, bytes]) -> None:
        """The thumbnails, then the original; all of them or none. Blocking: call from a thread.

        Only the original is fsynced: thumbnails are derived data (renamed into place whole, so
        never seen half-written; after a power cut `just thumbnails --all` remakes them), and
        skipping their fsyncs roughly doubles the upload rate of small images.
        """
        written: list[Path] = []
        try:
            for size, thumbnail in thumbnails.items():
                path = self.thumbnail_path(size, stored_name)
                path.parent.mkdir(parents=True, exist_ok=True)
                written.append(self._write_file(path, thumbnail, durable=False))
            written.append(self.write(stored_name, content))
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise

    def write_thumbnails(self, stored_name: str, thumbnails: dict[int, bytes]) -> None:
        for size, thumbnail in thumbnails.items():
            path = self.thumbnail_path(size, stored_name)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write_file(path, thumbnail, durable=False)

    def write(self, stored_name: str, content: bytes) -> Path:
        """Write the whole file or nothing. Blocking: call from a worker thread."""
        return self._write_file(self.path_of(stored_name), content)

    def _write_file(self, final: Path, content: bytes, *, durable: bool = True) -> Path:
        temporary = self.staging / f"{final.name}.{secrets.token_hex(4)}.part"
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(content)
                while view:
                    written = os.write(descriptor, view)
                    view = view[written:]
                if durable:
                    os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.rename(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        if durable:
            self._sync_folder(final.parent)
        return final

    def remove(self, stored_name: str) -> None:
        """The original first (its link dies at once), then every thumbnail of it."""
        self.path_of(stored_name).unlink(missing_ok=True)
        self._sync_folder(self.root)
        for size in self.thumbnail_sizes_present(stored_name):
            self.thumbnail_path(size, stored_name).unlink(missing_ok=True)

    def writable(self) -> bool:
        return self.root.is_dir() and os.access(self.root, os.W_OK) and os.access(self.staging, os.W_OK)

    @staticmethod
    def _sync_folder(folder: Path) -> None:
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
