"""Every metric the app exports (besides the HTTP ones of Litestar's middleware), and the small
record_* functions the services call. Knows nothing of HTTP: services import this, never a controller.

Label values come from fixed sets only (FORMATS, UPLOAD_OUTCOMES, ...): a file's name, an album's
or a path never becomes a label, so the number of series stays what it is whatever people upload.

With several processes (uvicorn --workers), prometheus_client's multiprocess mode keeps each
process's values in PROMETHEUS_MULTIPROC_DIR (the library reads that variable when it is first
imported); `multiprocess_mode` below says how each gauge's values of the processes are combined.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values

# --- fixed label values --------------------------------------------------------------------------

STORED, REFUSED, SKIPPED = "stored", "refused", "skipped"
UPLOAD_OUTCOMES = (STORED, REFUSED)
ZIP_ENTRY_OUTCOMES = (STORED, REFUSED, SKIPPED)
ZIP_JOB_STATES = ("queued", "running", "done", "failed")
FORMATS = ("jpg", "png", "gif", "other")
STORE_OUTAGE_REASONS = ("unavailable", "full")
# ops/state.py's outcomes of a backup or a check.
OPERATION_OUTCOMES = ("ok", "warnings", "problems", "failed")

_FORMAT_OF_EXTENSION = {"jpg": "jpg", "jpeg": "jpg", "jpe": "jpg", "jfif": "jpg", "png": "png", "gif": "gif"}
_FORMAT_OF_STORED = {"JPEG": "jpg", "PNG": "png", "GIF": "gif"}

# --- the metrics ---------------------------------------------------------------------------------

UPLOADS = Counter(
    "imagehost_uploads_total",
    "Uploads through the upload checks (single files and ZIP entries) by outcome and format",
    ["outcome", "format"],
)
UPLOAD_DURATION = Histogram(
    "imagehost_upload_duration_seconds",
    "Time from a received upload to its answer (checks, workers, storage), by outcome",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
UPLOAD_SIZE = Histogram(
    "imagehost_upload_size_bytes",
    "Size of the uploaded files as received, by outcome",
    ["outcome"],
    buckets=tuple(kib * 1024 for kib in (16, 64, 256, 512, 1024, 2048, 5120, 10240, 20480, 51200)),
)
THUMBNAILS = Counter("imagehost_thumbnails_made_total", "Thumbnails written with new images")
ZIP_JOBS = Counter("imagehost_zip_jobs_total", "ZIP upload jobs that reached each state", ["state"])
ZIP_ENTRIES = Counter("imagehost_zip_entries_total", "Entries of ZIP archives by outcome", ["outcome"])
DELETES = Counter("imagehost_deletes_total", "Images deleted (with their files)")
WORKERS_BUSY = Gauge("imagehost_workers_busy", "Image worker processes running a task", multiprocess_mode="livesum")
WORKERS_IDLE = Gauge("imagehost_workers_idle", "Image worker processes waiting for a task", multiprocess_mode="livesum")
WORKER_RESTARTS = Counter(
    "imagehost_worker_restarts_total", "Image workers replaced (died, ran out of memory or time, or were cut)"
)
DATABASE_OUTAGES = Counter("imagehost_database_outages_total", "Times the app lost PostgreSQL (once per outage)")
STORE_OUTAGES = Counter(
    "imagehost_store_outages_total", "Writes or removals in IMAGES_DIR that failed, by reason", ["reason"]
)

# Read at scrape time (controllers.py): what the database holds, as one process last saw it.
IMAGES_STORED = Gauge("imagehost_images_stored", "Images stored", multiprocess_mode="mostrecent")
BYTES_STORED = Gauge("imagehost_stored_bytes", "Bytes of the stored images (originals)", multiprocess_mode="mostrecent")
DATABASE_SIZE = Gauge("imagehost_database_size_bytes", "Size of the database", multiprocess_mode="mostrecent")
DISK_FREE = Gauge("imagehost_images_disk_free_bytes", "Free space where IMAGES_DIR is", multiprocess_mode="mostrecent")
DATABASE_UP = Gauge(
    "imagehost_database_up", "1 when the last scrape could read the database, else 0", multiprocess_mode="mostrecent"
)
# Each process's own pool, as it was at that process's last scrape (see README: Metrics).
DATABASE_POOL_IN_USE = Gauge(
    "imagehost_database_pool_connections_in_use",
    "Connections of the app's PostgreSQL pool in use (size minus idle)",
    multiprocess_mode="livesum",
)
DATABASE_POOL_SIZE = Gauge(
    "imagehost_database_pool_connections", "Connections open in the app's PostgreSQL pool", multiprocess_mode="livesum"
)
LAST_BACKUP_AGE = Gauge(
    "imagehost_last_backup_age_seconds", "Seconds since the last backup (NaN: none yet)", multiprocess_mode="mostrecent"
)
LAST_BACKUP_OUTCOME = Gauge(
    "imagehost_last_backup_outcome",
    "1 for the last backup's outcome, 0 for the others",
    ["outcome"],
    multiprocess_mode="mostrecent",
)
LAST_CHECK_AGE = Gauge(
    "imagehost_last_check_age_seconds",
    "Seconds since the last consistency check (NaN: none yet)",
    multiprocess_mode="mostrecent",
)
LAST_CHECK_OUTCOME = Gauge(
    "imagehost_last_check_outcome",
    "1 for the last check's outcome, 0 for the others",
    ["outcome"],
    multiprocess_mode="mostrecent",
)

# Every labelled series exists from the start (at 0), so rate() and the dashboard see it before
# the first event, and the label sets are visibly these and no others.
for _outcome in UPLOAD_OUTCOMES:
    UPLOAD_DURATION.labels(_outcome)
    UPLOAD_SIZE.labels(_outcome)
    for _format in FORMATS:
        UPLOADS.labels(_outcome, _format)
for _outcome in ZIP_ENTRY_OUTCOMES:
    ZIP_ENTRIES.labels(_outcome)
for _state in ZIP_JOB_STATES:
    ZIP_JOBS.labels(_state)
for _reason in STORE_OUTAGE_REASONS:
    STORE_OUTAGES.labels(_reason)


# --- recording -----------------------------------------------------------------------------------


def format_of_name(original_name: str) -> str:
    """jpg, png, gif or other, from a file name's extension (for uploads refused before decoding)."""
    _, dot, extension = original_name.rpartition(".")
    return _FORMAT_OF_EXTENSION.get(extension.lower(), "other") if dot else "other"


def format_of_stored(file_format: str) -> str:
    """jpg, png, gif or other, from a stored image's format (JPEG, PNG, GIF)."""
    return _FORMAT_OF_STORED.get(file_format, "other")


@dataclass
class UploadTimer:
    original_name: str
    size_bytes: int
    started: float
    stored_format: str | None = None

    def stored(self, file_format: str) -> None:
        self.stored_format = format_of_stored(file_format)


@contextmanager
def timed_upload(original_name: str, size_bytes: int) -> Iterator[UploadTimer]:
    """Counts one upload: stored when the block called `.stored(format)`, refused when it raised.

    A cancelled upload (the client went away, the app stops) is neither and is not counted.
    """
    timer = UploadTimer(original_name, size_bytes, time.perf_counter())
    try:
        yield timer
    except Exception:
        _record_upload(REFUSED, format_of_name(timer.original_name), timer)
        raise
    if timer.stored_format is not None:
        _record_upload(STORED, timer.stored_format, timer)


def _record_upload(outcome: str, image_format: str, timer: UploadTimer) -> None:
    UPLOADS.labels(outcome, image_format).inc()
    UPLOAD_DURATION.labels(outcome).observe(time.perf_counter() - timer.started)
    UPLOAD_SIZE.labels(outcome).observe(timer.size_bytes)


def record_thumbnails(count: int) -> None:
    THUMBNAILS.inc(count)


def record_delete() -> None:
    DELETES.inc()


def record_zip_entry(outcome: str) -> None:
    ZIP_ENTRIES.labels(outcome if outcome in ZIP_ENTRY_OUTCOMES else REFUSED).inc()


def record_zip_job(state: str) -> None:
    if state in ZIP_JOB_STATES:
        ZIP_JOBS.labels(state).inc()


def record_worker_pool(busy: int, idle: int) -> None:
    WORKERS_BUSY.set(busy)
    WORKERS_IDLE.set(max(idle, 0))


def record_worker_restart() -> None:
    WORKER_RESTARTS.inc()


def record_database_outage() -> None:
    DATABASE_OUTAGES.inc()


def record_store_outage(full: bool) -> None:
    STORE_OUTAGES.labels("full" if full else "unavailable").inc()


@dataclass(frozen=True)
class Readings:
    """What a scrape reads from the database and the disk (controllers.py takes them)."""

    images: int
    stored_bytes: int
    database_bytes: int
    disk_free_bytes: int
    last_backup_age: float | None  # seconds; None: no backup yet
    last_backup_outcome: str | None
    last_check_age: float | None
    last_check_outcome: str | None


def record_readings(readings: Readings | None) -> None:
    """None: the database did not answer (the gauges it feeds keep their last values)."""
    DATABASE_UP.set(0 if readings is None else 1)
    if readings is None:
        return
    IMAGES_STORED.set(readings.images)
    BYTES_STORED.set(readings.stored_bytes)
    DATABASE_SIZE.set(readings.database_bytes)
    DISK_FREE.set(readings.disk_free_bytes)
    _record_operation(LAST_BACKUP_AGE, LAST_BACKUP_OUTCOME, readings.last_backup_age, readings.last_backup_outcome)
    _record_operation(LAST_CHECK_AGE, LAST_CHECK_OUTCOME, readings.last_check_age, readings.last_check_outcome)


def _record_operation(age: Gauge, outcomes: Gauge, seconds: float | None, outcome: str | None) -> None:
    age.set(math.nan if seconds is None else seconds)
    for known in OPERATION_OUTCOMES:
        outcomes.labels(known).set(1 if outcome == known else 0)


def record_database_pool(size: int, idle: int) -> None:
    DATABASE_POOL_SIZE.set(size)
    DATABASE_POOL_IN_USE.set(max(size - idle, 0))


# --- processes -----------------------------------------------------------------------------------


def multiprocess_mode() -> bool:
    """Whether prometheus_client keeps the values in PROMETHEUS_MULTIPROC_DIR (its own decision, made
    when it was first imported) rather than in this process's memory."""
    return values.ValueClass is not values.MutexValue


def scrape_registry() -> CollectorRegistry:
    """What GET /metrics exports: every process's values in multiprocess mode, else this process's."""
    if not multiprocess_mode():
        from prometheus_client import REGISTRY

        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def process_ended() -> None:
    """At the app's shutdown: in multiprocess mode, this process's live gauges (workers, pool) stop
    counting in the sums; its counters stay, as Prometheus expects of counters."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid())
