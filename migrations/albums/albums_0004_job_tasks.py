"""ZIP jobs run as tasks of the job queue (ops_0003_job_queue): upload_jobs.task_id names the
queue's job (procrastinate_jobs.id) that runs it, on whichever instance's worker takes it. A job
whose task is no longer waiting or running, and never will be, is marked failed (JobBook).
`runner` now names the worker that took it last (its instance and process)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-02T20:01:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Upload jobs name their queue task."


class RawSQL(Table):
    pass


async def add_task():
    await RawSQL.raw("ALTER TABLE upload_jobs ADD COLUMN task_id bigint NULL")


async def drop_task():
    await RawSQL.raw("ALTER TABLE upload_jobs DROP COLUMN IF EXISTS task_id")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="albums", description=DESCRIPTION)
    manager.add_raw(add_task)
    manager.add_raw_backwards(drop_task)
    return manager
