"""The file half of an image: atomic writes into IMAGES_DIR, removal, and start-up clean-up.

Files are first written in IMAGES_DIR/.staging (same file system, so rename is atomic), fsynced,
renamed into place, and the folder is fsynced: a file in the store is never half-written.

The row is the commit point. An upload inserts its row, then (still inside the transaction) puts a
marker `.staging/<stored name>.<random>.pending` on disk and renames the files into place, then
commits; a delete puts the marker, deletes the row, then removes the files. The marker says "these
files stand only if their row does" and is removed once the transaction's outcome is known. Its
writer holds an flock on it, so a marker nobody holds belongs to a process that died (or to a commit
whose answer was lost): at start, and whenever the database comes back, the service settles each one
by its row (ImageService.finish_interrupted). So after any crash the store ends up with exactly the
files of its rows, and readers never see a row without its file: the files are in place before the
row becomes visible, and leave only after it is gone.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
from pathlib import Path

from imagehost.errors import StoredNameRefused
from imagehost.images import formats

STAGING = ".staging"
PENDING = ".pending"
THUMBS = "thumbs"
# A stored name: 22 URL-safe characters (128 random bits) and the extension of the real format.
# Matched whole (fullmatch): `$` alone would let a trailing newline through. The database holds
# rows to the same pattern (CHECK images_stored_name_pattern, migration images_0009).
STORED_NAME = re.compile(rf"[A-Za-z0-9_-]{{16,64}}\.({formats.STORED_EXTENSION_PATTERN})")


def fsync_folder(folder: Path) -> None:
    """Make a rename or a new file in `folder` survive a power cut."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def new_stored_name(extension: str) -> str:
    return secrets.token_urlsafe(16) + extension


def is_stored_name(name: object) -> bool:
    return isinstance(name, str) and STORED_NAME.fullmatch(name) is not None


def _try_lock(descriptor: int) -> bool:
    """An exclusive flock without waiting: False when another open file (any process) holds it."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class Provisional:
    """The files of one image while their row is being inserted or deleted: held by a locked marker."""

    def __init__(self, store: ImageStore, stored_name: str, marker: Path, descriptor: int) -> None:
        self.store = store
        self.stored_name = stored_name
        self.marker = marker
        self._descriptor: int | None = descriptor

    def keep(self) -> None:
        """The row is there: the files stay. Blocking, like every method here."""
        try:
            self.marker.unlink(missing_ok=True)
        finally:
            self._close()

    def discard(self) -> None:
        """The row is not there (never committed, or deleted): the files go. If they cannot, the
        marker stays, unlocked, and the next settling tries again."""
        try:
            self.store.remove(self.stored_name)
            self.marker.unlink(missing_ok=True)
        finally:
            self._close()

    def leave(self) -> None:
        """Undecided (the commit's answer was lost): unlock the marker for finish_interrupted."""
        self._close()

    def _close(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging = root / STAGING

    def prepare(self) -> int:
        """Create the folders and remove the half-written files of processes that died. Returns how many.

        A file still being written is locked by its writer (another worker) and stays; markers are
        left for finish_interrupted, which needs the database.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(exist_ok=True)
        (self.root / THUMBS).mkdir(exist_ok=True)
        removed = 0
        for leftover in self.staging.iterdir():
            if leftover.name.endswith(PENDING) or not leftover.is_file():
                continue
            try:
                descriptor = os.open(leftover, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                if _try_lock(descriptor):
                    leftover.unlink(missing_ok=True)
                    removed += 1
            finally:
                os.close(descriptor)
        return removed

    def provisional(self, stored_name: str) -> Provisional:
        """Put a locked marker for `stored_name` on disk (durably) before its files come or go."""
        self.path_of(stored_name)  # validates the name
        marker = self.staging / f"{stored_name}.{secrets.token_hex(4)}{PENDING}"
        descriptor = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        if not _try_lock(descriptor):  # finish_interrupted in another process got here first
            os.close(descriptor)
            raise BlockingIOError(f"marker {marker.name} taken by another process")
        try:
            self._sync_folder(self.staging)
        except BaseException:
            os.close(descriptor)
            marker.unlink(missing_ok=True)
            raise
        return Provisional(self, stored_name, marker, descriptor)

    def write_provisional(self, stored_name: str, content: bytes, thumbnails: dict[int, bytes]) -> Provisional:
        """The marker, then the files (see write_image). On failure nothing of them is left."""
        provisional = self.provisional(stored_name)
        try:
            self.write_image(stored_name, content, thumbnails)
        except BaseException:
            provisional.discard()
            raise
        return provisional

    def interrupted(self) -> list[Provisional]:
        """The markers no live process holds, each now locked by us: to be settled by their rows."""
        found = []
        for marker in sorted(self.staging.glob(f"*{PENDING}")):
            stored_name = marker.name.rsplit(".", 2)[0]
            try:
                descriptor = os.open(marker, os.O_RDONLY)
            except FileNotFoundError:
                continue
            if not is_stored_name(stored_name) or not _try_lock(descriptor):
                os.close(descriptor)
                continue
            found.append(Provisional(self, stored_name, marker, descriptor))
        return found

    def path_of(self, stored_name: str) -> Path:
        """The one way from a stored name (from a row, a URL, a backup) to a path in the store.

        Refuses (StoredNameRefused, a 404 for HTTP) anything but a stored name: a row holding
        `../var/secret_key` must never be opened, whoever put it there.
        """
        if not is_stored_name(stored_name):
            raise StoredNameRefused(name=repr(stored_name)[:100])
        return self.root / stored_name

    def existing_path(self, stored_name: str) -> Path | None:
        """The path of the stored file `stored_name` if that is a stored name and the file is there."""
        if not is_stored_name(stored_name):
            return None
        path = self.path_of(stored_name)
        return path if path.is_file() else None

    def thumbnail_path(self, size: int, stored_name: str) -> Path:
        """Thumbnails live at thumbs/<size>/<stored name>.webp, a URL nginx can serve as it is."""
        self.path_of(stored_name)  # validates the name
        return self.root / THUMBS / str(int(size)) / f"{stored_name}.webp"

    def thumbnail_sizes_present(self, stored_name: str) -> list[int]:
        folder = self.root / THUMBS
        if not is_stored_name(stored_name) or not folder.is_dir():
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
                # Held until the file is renamed or removed: prepare() in another worker leaves it be.
                if not _try_lock(descriptor):
                    raise BlockingIOError(f"{temporary.name} taken by another process")
                view = memoryview(content)
                while view:
                    written = os.write(descriptor, view)
                    view = view[written:]
                if durable:
                    os.fsync(descriptor)
                os.rename(temporary, final)
            finally:
                os.close(descriptor)
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
        fsync_folder(folder)
