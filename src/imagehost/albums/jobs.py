"""A ZIP upload is a job: its state and each entry's result live in PostgreSQL as the entries
finish, so any app instance, a reload or a later request can show how far it got.

The job's id is a 128-bit random token that only the uploader is given; the table keys the job by
the token's SHA-256, and the delete keys of anonymous uploads are sealed with the token, so a copy
of the database gives neither a job's URL nor a way to delete its images. The queue's task that
runs it (tasks/queue.py, on any instance's worker) carries the id encrypted with SECRET_KEY.

An entry stored from the archive gets its job row in the image's own transaction (the album link's
transaction): a crash leaves every stored image listed in its job, and the job's next attempt goes
on from the entries not recorded yet. A job whose task will never run again (its attempts spent,
or the queue lost it) is marked failed by the next instance that connects (finish_interrupted) or
by the next read of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from imagehost.accounts.principal import Principal
from imagehost.albums.tables import Album
from imagehost.errors import ImageHostError, JobInterrupted, JobNotFound
from imagehost.logging import action_log
from imagehost.metrics import instruments
from imagehost.storage.spools import Spools

UNFINISHED = ("queued", "running")
# Its task neither waits nor runs (spent, or lost): the job will not go on. A job not handed to the
# queue ten minutes after it was made never will be (its instance died in between).
_TASK_GONE = (
    "((j.task_id IS NULL AND j.created_at < now() - interval '10 minutes')"
    " OR (j.task_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs p"
    " WHERE p.id = j.task_id AND p.status IN ('todo', 'doing'))))"
)


def new_job_id() -> str:
    return secrets.token_urlsafe(16)  # 128 random bits


def job_key(job_id: str) -> str:
    """What the table stores for a job id."""
    return hashlib.sha256(job_id.encode()).hexdigest()


def _pad(secret: str, purpose: str) -> bytes:
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()


def _xor(data: bytes, pad: bytes) -> bytes:
    """A one-time pad over `data` (at most the pad's 32 bytes): the same call seals and opens."""
    return bytes(a ^ b for a, b in zip(data, pad, strict=False))


def seal(job_id: str, number: int, delete_key: str) -> str:
    """The delete key of entry `number`, readable only with the job id (a one-time pad per entry)."""
    return _xor(delete_key.encode(), _pad(job_id, f"delete key of entry {number}")).hex()


def unseal(job_id: str, number: int, sealed: str) -> str:
    return _xor(bytes.fromhex(sealed), _pad(job_id, f"delete key of entry {number}")).decode()


def ticket(secret: str, job_id: str) -> str:
    """The job id as the queue's task carries it: readable only with SECRET_KEY."""
    return _xor(job_id.encode(), _pad(secret, f"job ticket {job_key(job_id)}")).hex()


def job_id_of(secret: str, key: str, sealed: str) -> str | None:
    """The job id back from its ticket; None when it does not match the job (another SECRET_KEY)."""
    try:
        raw = _xor(bytes.fromhex(sealed), _pad(secret, f"job ticket {key}")).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return raw if job_key(raw) == key else None


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
    " ON CONFLICT (job, number) DO UPDATE SET entry = EXCLUDED.entry, status = EXCLUDED.status,"
    " album_name = EXCLUDED.album_name, article_number = EXCLUDED.article_number, image = EXCLUDED.image,"
    # The same entry's key, recorded with its image, stays when its result comes without one; another
    # entry under this number (numbered by an older version) keeps nothing of the one before.
    " sealed_delete_key = CASE WHEN upload_job_entries.entry = EXCLUDED.entry"
    " THEN COALESCE(EXCLUDED.sealed_delete_key, upload_job_entries.sealed_delete_key)"
    " ELSE EXCLUDED.sealed_delete_key END,"
    " reason_template = EXCLUDED.reason_template, reason_params = EXCLUDED.reason_params"
)


def _params(reason: Any) -> str:
    return json.dumps(getattr(reason, "params", None) or {}, default=str)


class JobBook:
    """Reads and writes the upload_jobs and upload_job_entries tables, and the jobs' spooled archives."""

    def __init__(self, spools: Spools) -> None:
        self.spools = spools
        self.log = action_log()

    # --- a job's life ----------------------------------------------------------------------------

    async def create(
        self, job_id: str, principal: Principal, archive_name: str, album_name: str, mode: str, total: int
    ) -> None:
        await Album.raw(
            "INSERT INTO upload_jobs (id, archive_name, album_name, mode, started_by_sub, total, runner)"
            " VALUES ({}, {}, {}, {}, {}, {}, '')",
            job_key(job_id),
            archive_name[:255],
            album_name,
            mode,
            principal.sub if principal.signed_in else None,
            total,
        )
        instruments.record_zip_job("queued")

    async def spool(self, job_id: str, source: BinaryIO) -> None:
        """A copy of the request's archive that outlives the request, where any worker finds it."""
        await self.spools.keep(job_key(job_id), source)

    def spooled(self, job_id: str) -> Any:
        """The archive's copy for the job's run (an async context: a file, or None when it is gone)."""
        return self.spools.opened(job_key(job_id))

    async def queued(self, job_id: str, task_id: int) -> None:
        await Album.raw("UPDATE upload_jobs SET task_id = {} WHERE id = {}", task_id, job_key(job_id))

    async def started(self, job_id: str, runner: str) -> bool:
        """The job is taken by `runner`; False when it has already ended (nothing to do)."""
        rows = await Album.raw(
            "UPDATE upload_jobs SET state = 'running', runner = {}"
            " WHERE id = {} AND state IN ('queued', 'running') RETURNING id",
            runner[:255],
            job_key(job_id),
        )
        if rows:
            instruments.record_zip_job("running")
        return bool(rows)

    async def requeued(self, job_id: str) -> None:
        """Cut short (a shutdown, a lost database): it waits for its next attempt."""
        await Album.raw("UPDATE upload_jobs SET state = 'queued' WHERE id = {} AND state = 'running'", job_key(job_id))

    async def state(self, job_id: str) -> str | None:
        """The job's state alone (None for no such job): what a waiting request polls."""
        rows = await Album.raw("SELECT state FROM upload_jobs WHERE id = {}", job_key(job_id))
        return rows[0]["state"] if rows else None

    async def recorded(self, job_id: str) -> list[EntryRow]:
        """The entries an earlier attempt of the job finished."""
        return self._entries(job_id, await Album.raw(_ENTRIES, job_key(job_id)))

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

    async def _fail(self, key: str, error: ImageHostError) -> bool:
        """Fail an unfinished job; False when it had finished already (or another caller failed it)."""
        failed = await Album.raw(
            "UPDATE upload_jobs SET state = 'failed', finished_at = now(), error_template = {},"
            " error_params = {}::jsonb WHERE id = {} AND state IN ('queued', 'running') RETURNING id",
            error.template,
            _params(error),
            key,
        )
        if failed:  # a job already finished is not failed again
            instruments.record_zip_job("failed")
        return bool(failed)

    async def remove_spool(self, job_id: str) -> None:
        await self.spools.remove(job_key(job_id))

    # --- reading ---------------------------------------------------------------------------------

    async def read(self, job_id: str, principal: Principal) -> tuple[JobRow, list[EntryRow]]:
        """The job and its entries so far. Its starter (by identity; anyone holding the id of an
        anonymous upload) and admins may read it; to everyone else it does not exist."""
        key = job_key(job_id)
        rows = await Album.raw(
            "SELECT j.id AS key, j.state, j.archive_name, j.album_name, j.mode, j.started_by_sub, j.total,"  # noqa: S608
            " j.error_template, j.error_params, j.created_at, j.finished_at, " + _TASK_GONE + " AS gone"
            " FROM upload_jobs j WHERE j.id = {}",
            key,
        )
        if not rows:
            raise JobNotFound()
        row = rows[0]
        starter = row["started_by_sub"]
        if starter is not None and starter != principal.sub and not principal.is_admin:
            raise JobNotFound()
        if row["state"] in UNFINISHED and row["gone"]:
            await self.finish_interrupted()  # the same path as at start: logged once, its archive removed
            return await self.read(job_id, principal)
        job = JobRow(
            **{name: row[name] for name in JobRow.__dataclass_fields__ if name not in {"error_params"}},
            error_params=_loaded(row["error_params"]),
        )
        return job, self._entries(job_id, await Album.raw(_ENTRIES, key))

    @staticmethod
    def _entries(job_id: str, rows: list[dict[str, Any]]) -> list[EntryRow]:
        return [
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
            for entry in rows
        ]

    # --- after a crash ---------------------------------------------------------------------------

    async def finish_interrupted(self) -> int:
        """Mark failed the jobs whose task will not run again; remove the archives no unfinished
        job needs. Runs at start, whenever the database comes back, and after the queue gave up on
        a job. Returns how many jobs it failed."""
        rows = await Album.raw(
            "SELECT j.id, j.archive_name, j.album_name, j.total,"  # noqa: S608
            " (SELECT count(*) FROM upload_job_entries e WHERE e.job = j.id AND e.status = 'stored') AS stored"
            " FROM upload_jobs j WHERE j.state IN ('queued', 'running') AND " + _TASK_GONE
        )
        failed = 0
        for row in rows:
            if not await self._fail(row["id"], JobInterrupted()):
                continue  # a concurrent caller (a reader of the job, another instance) failed it first
            failed += 1
            self.log.warning(
                f"upload job of {row['archive_name']} (album {row['album_name']}) was interrupted: marked failed,"
                f" {row['stored']} of {row['total']} entries stored and kept.",
                action="Storage",
            )
        await self._remove_unneeded_spools()
        return failed

    async def _remove_unneeded_spools(self) -> None:
        names = await self.spools.names()
        if not names:
            return
        waiting = {
            row["id"]
            for row in await Album.raw(
                "SELECT id FROM upload_jobs WHERE id = ANY({}::varchar[]) AND state IN ('queued', 'running')", names
            )
        }
        for name in names:
            if name not in waiting:
                await self.spools.remove(name)


def _loaded(value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    return json.loads(value)
