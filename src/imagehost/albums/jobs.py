"""A ZIP upload is a job: its state and each entry's result live in PostgreSQL as the entries
finish, so another app process, a reload or a later request can show how far it got.

The job's id is a 128-bit random token that only the uploader is given; the table keys the job by
the token's SHA-256, and the delete keys of anonymous uploads are sealed with the token, so a copy
of the database gives neither a job's URL nor a way to delete its images.

An entry stored from the archive gets its job row in the image's own transaction (the album link's
transaction): a crash leaves every stored image listed in its job. A job whose process died is
marked failed by the next process that connects (finish_interrupted), recognised by its runner
(host, pid and the pid's start time) or, from another host, by its heartbeat going stale.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import anyio.to_thread

from imagehost.accounts.principal import Principal
from imagehost.albums.tables import Album
from imagehost.errors import ImageHostError, JobInterrupted, JobNotFound
from imagehost.logging import action_log
from imagehost.metrics import instruments

HEARTBEAT_SECONDS = 10.0
# A running job whose process has not written for this long is taken as dead, whatever its host.
STALE_SECONDS = 120
UNFINISHED = ("queued", "running")
SPOOL_FOLDER = "jobs"  # inside IMAGES_DIR/.staging: the archives of running jobs


def new_job_id() -> str:
    return secrets.token_urlsafe(16)  # 128 random bits


def job_key(job_id: str) -> str:
    """What the table stores for a job id."""
    return hashlib.sha256(job_id.encode()).hexdigest()


def _pad(job_id: str, number: int) -> bytes:
    return hmac.new(job_id.encode(), f"delete key of entry {number}".encode(), hashlib.sha256).digest()


def seal(job_id: str, number: int, delete_key: str) -> str:
    """The delete key of entry `number`, readable only with the job id (a one-time pad per entry)."""
    raw = delete_key.encode()
    return bytes(a ^ b for a, b in zip(raw, _pad(job_id, number), strict=False)).hex()


def unseal(job_id: str, number: int, sealed: str) -> str:
    raw = bytes.fromhex(sealed)
    return bytes(a ^ b for a, b in zip(raw, _pad(job_id, number), strict=False)).decode()


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return "?"
    return stat.rpartition(")")[2].split()[19]


def this_runner() -> str:
    return f"{socket.gethostname()}|{os.getpid()}|{_start_time(os.getpid())}"


def runner_is_gone(runner: str) -> bool:
    """True when the process that ran a job on this host is no longer there (a pid reused by
    another process has another start time). Other hosts' jobs: the heartbeat decides."""
    host, _, rest = runner.partition("|")
    pid_text, _, started = rest.partition("|")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return started != str(_start_time(pid))
    now = _start_time(pid)
    if now is None:
        return True
    return now != "?" and now != started


@dataclass
class JobRow:
    key: str
    state: str
    archive_name: str
    album_name: str
    mode: str
    started_by_sub: str | None
    total: int
    error_template: str | None
    error_params: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None


@dataclass
class EntryRow:
    number: int
    entry: str
    status: str
    album_name: str
    article_number: str | None
    image_row: dict[str, Any] | None
    delete_key: str | None
    reason_template: str | None
    reason_params: dict[str, Any]


_ENTRIES = (
    "SELECT e.number, e.entry, e.status, e.album_name AS entry_album, e.article_number, e.sealed_delete_key,"
    " e.reason_template, e.reason_params, i.id, i.stored_name, i.original_name, i.size_bytes, i.file_format,"
    " i.sha256, i.uploaded_at, i.width, i.height, i.source_format, i.quality, i.uploader_sub, i.uploader_name"
    " FROM upload_job_entries e LEFT JOIN images i ON i.id = e.image WHERE e.job = {} ORDER BY e.number"
)
_RECORD = (
    "INSERT INTO upload_job_entries (job, number, entry, status, album_name, article_number, image,"
    " sealed_delete_key, reason_template, reason_params) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}::jsonb)"
    " ON CONFLICT (job, number) DO UPDATE SET status = EXCLUDED.status, image = EXCLUDED.image,"
    " sealed_delete_key = COALESCE(EXCLUDED.sealed_delete_key, upload_job_entries.sealed_delete_key),"
    " reason_template = EXCLUDED.reason_template, reason_params = EXCLUDED.reason_params"
)


def _params(reason: Any) -> str:
    return json.dumps(getattr(reason, "params", None) or {}, default=str)


class JobBook:
    """Reads and writes the upload_jobs and upload_job_entries tables, and the jobs' spooled archives."""

    def __init__(self, staging: Path) -> None:
        self.spool_folder = staging / SPOOL_FOLDER
        self.log = action_log()

    # --- a job's life ----------------------------------------------------------------------------

    async def create(
        self, job_id: str, principal: Principal, archive_name: str, album_name: str, mode: str, total: int
    ) -> None:
        await Album.raw(
            "INSERT INTO upload_jobs (id, archive_name, album_name, mode, started_by_sub, total, runner)"
            " VALUES ({}, {}, {}, {}, {}, {}, {})",
            job_key(job_id),
            archive_name[:255],
            album_name,
            mode,
            principal.sub if principal.signed_in else None,
            total,
            this_runner(),
        )
        instruments.record_zip_job("queued")

    def spool(self, job_id: str, source: BinaryIO) -> Path:
        """A copy of the request's archive that outlives the request (blocking: call from a thread)."""
        self.spool_folder.mkdir(parents=True, exist_ok=True)
        path = self.spool_folder / f"{job_key(job_id)}.zip"
        source.seek(0)
        with path.open("wb") as copy:
            shutil.copyfileobj(source, copy, 1024 * 1024)
        return path

    async def started(self, job_id: str) -> None:
        await Album.raw("UPDATE upload_jobs SET state = 'running', heartbeat_at = now() WHERE id = {}", job_key(job_id))
        instruments.record_zip_job("running")

    async def keep_alive(self, job_id: str) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await Album.raw("UPDATE upload_jobs SET heartbeat_at = now() WHERE id = {}", job_key(job_id))
            except Exception as error:  # the database may be away a moment; the job says so itself
                self.log.warning(f"upload job heartbeat not written: {error}.", action="Database")

    async def record(self, job_id: str, number: int, result: Any, image_id: int | None = None) -> None:
        """One entry's result (an EntryResult). Called again for an entry stored in the image's
        transaction, to add its delete key once the upload is committed."""
        image = result.image.id if result.image is not None else image_id
        reason = result.reason if result.status != "stored" else None
        await Album.raw(
            _RECORD,
            job_key(job_id),
            number,
            result.entry,
            result.status,
            result.album_name,
            result.article_number,
            image,
            seal(job_id, number, result.delete_key) if result.delete_key else None,
            reason.template if reason is not None else None,
            _params(reason),
        )

    async def finish(self, job_id: str) -> None:
        await Album.raw("UPDATE upload_jobs SET state = 'done', finished_at = now() WHERE id = {}", job_key(job_id))
        instruments.record_zip_job("done")

    async def fail(self, job_id: str, error: ImageHostError) -> None:
        await self._fail(job_key(job_id), error)

    async def _fail(self, key: str, error: ImageHostError) -> None:
        failed = await Album.raw(
            "UPDATE upload_jobs SET state = 'failed', finished_at = now(), error_template = {},"
            " error_params = {}::jsonb WHERE id = {} AND state IN ('queued', 'running') RETURNING id",
            error.template,
            _params(error),
            key,
        )
        if failed:  # a job already finished is not failed again
            instruments.record_zip_job("failed")

    def remove_spool(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    # --- reading ---------------------------------------------------------------------------------

    async def read(self, job_id: str, principal: Principal) -> tuple[JobRow, list[EntryRow]]:
        """The job and its entries so far. Its starter (by identity; anyone holding the id of an
        anonymous upload) and admins may read it; to everyone else it does not exist."""
        key = job_key(job_id)
        rows = await Album.raw(
            "SELECT id AS key, state, archive_name, album_name, mode, started_by_sub, total, error_template,"
            " error_params, created_at, finished_at, runner,"
            " heartbeat_at < now() - make_interval(secs => {}) AS stale FROM upload_jobs WHERE id = {}",
            STALE_SECONDS,
            key,
        )
        if not rows:
            raise JobNotFound()
        row = rows[0]
        starter = row["started_by_sub"]
        if starter is not None and starter != principal.sub and not principal.is_admin:
            raise JobNotFound()
        if row["state"] in UNFINISHED and (row["stale"] or runner_is_gone(row["runner"])):
            await self._fail(key, JobInterrupted())
            return await self.read(job_id, principal)
        job = JobRow(
            **{name: row[name] for name in JobRow.__dataclass_fields__ if name not in {"error_params"}},
            error_params=_loaded(row["error_params"]),
        )
        entries = [
            EntryRow(
                number=entry["number"],
                entry=entry["entry"],
                status=entry["status"],
                album_name=entry["entry_album"],
                article_number=entry["article_number"],
                image_row=entry if entry["id"] is not None else None,
                delete_key=unseal(job_id, entry["number"], entry["sealed_delete_key"])
                if entry["sealed_delete_key"]
                else None,
                reason_template=entry["reason_template"],
                reason_params=_loaded(entry["reason_params"]) or {},
            )
            for entry in await Album.raw(_ENTRIES, key)
        ]
        return job, entries

    # --- after a crash ---------------------------------------------------------------------------

    async def finish_interrupted(self) -> int:
        """Mark failed the jobs whose process is gone; remove the archives no running job needs.
        Runs at start and whenever the database comes back. Returns how many jobs it failed."""
        rows = await Album.raw(
            "SELECT j.id, j.runner, j.archive_name, j.album_name, j.total,"
            " j.heartbeat_at < now() - make_interval(secs => {}) AS stale,"
            " (SELECT count(*) FROM upload_job_entries e WHERE e.job = j.id AND e.status = 'stored') AS stored"
            " FROM upload_jobs j WHERE j.state IN ('queued', 'running')",
            STALE_SECONDS,
        )
        failed = 0
        for row in rows:
            if not (row["stale"] or runner_is_gone(row["runner"])):
                continue
            await self._fail(row["id"], JobInterrupted())
            failed += 1
            self.log.warning(
                f"upload job of {row['archive_name']} (album {row['album_name']}) was interrupted: marked failed,"
                f" {row['stored']} of {row['total']} entries stored and kept.",
                action="Storage",
            )
        await self._remove_unneeded_spools()
        return failed

    async def _remove_unneeded_spools(self) -> None:
        names = await anyio.to_thread.run_sync(self._spooled)
        if not names:
            return
        running = {
            row["id"]
            for row in await Album.raw(
                "SELECT id FROM upload_jobs WHERE id = ANY({}::varchar[]) AND state IN ('queued', 'running')",
                [path.stem for path in names],
            )
        }
        for path in names:
            if path.stem not in running:
                await anyio.to_thread.run_sync(self.remove_spool, path)

    def _spooled(self) -> list[Path]:
        if not self.spool_folder.is_dir():
            return []
        return [path for path in self.spool_folder.iterdir() if path.suffix == ".zip"]


def _loaded(value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    return json.loads(value)
