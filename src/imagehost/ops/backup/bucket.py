"""Backups and restore with STORAGE=s3: the bucket's side. The archive is the same as the folder's
(`images/<key>` members, their size and SHA-256 in the manifest), so a backup made with either
storage restores into either.

- A backup streams every object named like ours (originals `<stored name>`, thumbnails
  `thumbs/<size>/<stored name>.webp`) under S3_PREFIX into the archive, one object at a time and
  chunk by chunk (ObjectStore.stream), hashing it on the way. Other keys (the bucket may be shared)
  are not ours and are left out.
- A restore puts the backup's files into a bucket that holds no image objects under S3_PREFIX,
  each read again from the archive and checked against the manifest, PARALLEL objects at a time
  (ObjectStore.put takes bytes: an object is held in memory whole, an upload's size at most).

Objects first, then the database, as with the folder: the app never sees a restored row without
its object. Before the first object goes in, the marker RESTORE_MARKER (not named like ours, so
never listed as an image) records which backup is being restored. If the restore dies or the
bucket stops answering half-way, the database is unchanged and the bucket holds some of the
backup's objects and the marker: running the same restore again carries on (the marker lets it
into the not-empty bucket, it puts every object again and then switches the database); to give up
instead, delete the objects and the marker. The marker goes once the restore has been verified.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tarfile
from collections.abc import AsyncIterator
from typing import Any

import anyio.from_thread
import anyio.to_thread

from imagehost.errors import StorageUnavailable
from imagehost.images.storage import THUMBS, is_stored_name
from imagehost.ops.backup.archive import FILES, UnpackedBackup, add_stream, files_in
from imagehost.ops.backup.errors import BackupError, BucketNotEmpty
from imagehost.ops.backup.report import RestoreReport
from imagehost.settings import Settings
from imagehost.storage.bucket import CONTENT_TYPES
from imagehost.storage.objects import ObjectStore

RESTORE_MARKER = ".imagehost-restore"
PARALLEL = 4  # objects put or read back at once by a restore
SHOWN = 5  # keys named in a refusal


def place_of(objects: ObjectStore) -> str:
    return getattr(objects, "place", "the bucket")


def is_image_key(key: str) -> bool:
    """An original (`<stored name>`) or a thumbnail (`thumbs/<size>/<stored name>.webp`)."""
    parts = key.split("/")
    if len(parts) == 1:
        return is_stored_name(key)
    return (
        len(parts) == 3
        and parts[0] == THUMBS
        and parts[1].isdigit()
        and parts[2].endswith(".webp")
        and is_stored_name(parts[2].removesuffix(".webp"))
    )


def _unreachable(objects: ObjectStore, error: StorageUnavailable, doing: str) -> BackupError:
    return BackupError(f"{place_of(objects)} does not answer while {doing}: {error.params.get('reason', error)}")


# --- backup ---------------------------------------------------------------------------------------


class _ObjectReader:
    """An object's chunks as a file for tarfile, which writes in a worker thread: each chunk is awaited
    on the event loop (anyio.from_thread), so only a chunk or two of it is ever in memory."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks
        self.buffer = bytearray()
        self.ended = False

    async def _next(self) -> bytes | None:
        try:
            return await self.chunks.__anext__()
        except StopAsyncIteration:
            return None

    def read(self, size: int = -1) -> bytes:
        while not self.ended and (size < 0 or len(self.buffer) < size):
            chunk = anyio.from_thread.run(self._next)
            if chunk is None:
                self.ended = True
            else:
                self.buffer += chunk
        size = len(self.buffer) if size < 0 else min(size, len(self.buffer))
        taken = bytes(self.buffer[:size])
        del self.buffer[:size]
        return taken

    async def close(self) -> None:
        closing = getattr(self.chunks, "aclose", None)
        if closing is not None and not self.ended:
            await closing()


async def archive_objects(tar: tarfile.TarFile, root: str, objects: ObjectStore) -> list[dict[str, Any]]:
    """Every object named like ours into `tar` as `root/images/<key>`, in the listing's order; returns
    the manifest's entries. An object gone between the listing and its read is skipped (the caller
    tells a row without its object). BackupError when the bucket stops answering."""
    entries = []
    key = ""
    try:
        async for listed in objects.listing(""):
            key = listed.key
            if not is_image_key(key):
                continue
            found = await objects.stream(key)
            if found is None:
                continue  # deleted after it was listed
            facts, chunks = found
            reader = _ObjectReader(chunks)
            try:
                size, digest = await anyio.to_thread.run_sync(
                    add_stream, tar, f"{root}/{FILES}/{key}", facts.size, facts.modified.timestamp(), reader
                )
            except OSError as error:  # fewer or more bytes than the store announced
                raise BackupError(f"{key} in {place_of(objects)} could not be read whole: {error}") from None
            finally:
                await reader.close()
            entries.append({"path": key, "size": size, "sha256": digest})
    except StorageUnavailable as error:
        doing = f"reading {key}" if key else "listing its objects"
        raise _unreachable(objects, error, f"{doing} ({len(entries)} objects archived so far)") from None
    return entries


# --- restore --------------------------------------------------------------------------------------


def _marker_content(unpacked: UnpackedBackup) -> bytes:
    return json.dumps(
        {"backup": unpacked.name, "manifest_sha256": hashlib.sha256(unpacked.manifest_bytes).hexdigest()}
    ).encode()


async def check_empty(settings: Settings, objects: ObjectStore, unpacked: UnpackedBackup) -> bool:
    """Changes nothing. True when the bucket holds no image objects under S3_PREFIX, or only what an
    interrupted restore of this same backup put there (True too: it carries on). BucketNotEmpty
    otherwise, BackupError when the bucket does not answer."""
    place = place_of(objects)
    try:
        marker = await objects.get(RESTORE_MARKER)
        count, shown = 0, []
        async for listed in objects.listing(""):
            if is_image_key(listed.key):
                count += 1
                if len(shown) < SHOWN:
                    shown.append(listed.key)
    except StorageUnavailable as error:
        raise _unreachable(objects, error, "checking that it is empty") from None
    if not count:
        return True
    if marker == _marker_content(unpacked):
        return True
    where = f"under S3_PREFIX {settings.s3_prefix!r}" if settings.s3_prefix else "(S3_PREFIX is empty)"
    named = ", ".join(shown) + (f" and {count - len(shown)} more" if count > len(shown) else "")
    earlier = ""
    if marker is not None:
        try:
            earlier = f" They include what an interrupted restore of {json.loads(marker)['backup']} put there."
        except (ValueError, KeyError, TypeError):
            earlier = f" It holds the marker {RESTORE_MARKER} of an interrupted restore."
    raise BucketNotEmpty(
        f"{place} already holds {count} image objects {where}: {named}.{earlier} A restore puts a backup's "
        "images only into a bucket without any, so that nothing there is overwritten or left without its "
        "row. Delete them (or set S3_PREFIX to an empty folder of the bucket) and restore again"
    )


def content_type(key: str) -> str:
    if key.startswith(f"{THUMBS}/"):
        return "image/webp"
    return CONTENT_TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream")


async def put_objects(objects: ObjectStore, unpacked: UnpackedBackup, report: RestoreReport) -> None:
    """The marker, then every file of the backup into the bucket, PARALLEL at a time, each read again
    from the archive (and checked against the manifest). BackupError when the bucket stops taking
    them: what was put stays, with the marker, for the same restore run again."""
    place = place_of(objects)
    total = len(unpacked.manifest["files"])
    try:
        await objects.put(RESTORE_MARKER, _marker_content(unpacked), "application/json")
    except StorageUnavailable as error:
        raise _unreachable(objects, error, "starting the restore (nothing was put into it)") from None
    files = files_in(unpacked)
    slots = asyncio.Semaphore(PARALLEL)
    failures: list[Exception] = []
    running: set[asyncio.Task[None]] = set()

    async def put(entry: dict[str, Any], content: bytes) -> None:
        try:
            await objects.put(entry["path"], content, content_type(entry["path"]))
            report.restored.append(entry["path"])
        except Exception as error:  # told once the others in flight have ended
            failures.append(error)
        finally:
            slots.release()

    try:
        while not failures:
            await slots.acquire()
            item = await anyio.to_thread.run_sync(next, files, None)
            if item is None:
                slots.release()
                break
            task = asyncio.create_task(put(*item))
            running.add(task)
            task.add_done_callback(running.discard)
    finally:
        await asyncio.gather(*running, return_exceptions=True)
        await anyio.to_thread.run_sync(files.close)
    if failures and not isinstance(failures[0], StorageUnavailable):
        raise failures[0]
    if failures:
        reason = failures[0].params.get("reason", failures[0])  # type: ignore[attr-defined]
        raise BackupError(
            f"{place} stopped taking objects after {len(report.restored)} of {total} were put "
            f"({reason}); the database is unchanged. Run the same restore "
            f"again once the bucket answers: it carries on (the marker {RESTORE_MARKER} in the bucket names this "
            "backup). To give up instead, delete the objects it put and the marker"
        )


async def differing_objects(objects: ObjectStore, manifest: dict[str, Any]) -> list[str]:
    """Every file of the manifest read back from the bucket (streamed) and hashed: what is missing or differs."""
    slots = asyncio.Semaphore(PARALLEL)

    async def one(entry: dict[str, Any]) -> str | None:
        async with slots:
            found = await objects.stream(entry["path"])
            if found is None:
                return f"{entry['path']}: missing after the restore"
            _, chunks = found
            digest, size = hashlib.sha256(), 0
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
            if size != entry["size"] or digest.hexdigest() != entry["sha256"]:
                return f"{entry['path']}: differs from the backup after the restore"
            return None

    found = await asyncio.gather(*(one(entry) for entry in manifest["files"]), return_exceptions=True)
    for outcome in found:
        if isinstance(outcome, StorageUnavailable):
            return [f"{place_of(objects)} could not be read back: {outcome.params.get('reason', outcome)}"]
        if isinstance(outcome, BaseException):
            raise outcome
    return [problem for problem in found if isinstance(problem, str)]


async def clear_marker(objects: ObjectStore, report: RestoreReport) -> None:
    try:
        await objects.delete(RESTORE_MARKER)
    except StorageUnavailable as error:
        report.warnings.append(
            f"the marker {RESTORE_MARKER} could not be removed from {place_of(objects)} "
            f"({error.params.get('reason', error)}): delete it by hand"
        )
