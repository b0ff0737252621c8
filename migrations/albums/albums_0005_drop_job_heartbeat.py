"""upload_jobs.heartbeat_at goes: it was written once, when a worker took the job, and read by
nobody since the job queue (ops_0003_job_queue) keeps the workers' heartbeats. `runner` stays: the
instance and process that took the job last, whose app.log holds its lines."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-03T12:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Upload jobs lose their unread heartbeat."


class RawSQL(Table):
    pass


async def drop_heartbeat():
    await RawSQL.raw("ALTER TABLE upload_jobs DROP COLUMN IF EXISTS heartbeat_at")


async def add_heartbeat():
    await RawSQL.raw("ALTER TABLE upload_jobs ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz NOT NULL DEFAULT now()")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="albums", description=DESCRIPTION)
    manager.add_raw(drop_heartbeat)
    manager.add_raw_backwards(add_heartbeat)
    return manager
