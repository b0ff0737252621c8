"""ZIP uploads as jobs: their state and each entry's result, written as the entries finish, so that
another app process (or a reload) can show a job's progress and its report.

A job's id is a 128-bit random token the uploader holds; the table keeps only its SHA-256, so the
database alone gives neither the job's URL nor the delete keys sealed with it.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-02T00:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Upload jobs and their entries."

FORWARD_SQL = [
    "CREATE TABLE upload_jobs (id varchar(64) PRIMARY KEY,"
    " state varchar(10) NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),"
    " archive_name varchar(255) NOT NULL, album_name varchar(200) NOT NULL, mode varchar(10) NOT NULL,"
    " started_by_sub varchar(255) NULL, total integer NOT NULL,"
    " runner varchar(255) NOT NULL, heartbeat_at timestamptz NOT NULL DEFAULT now(),"
    " error_template text NULL, error_params jsonb NULL,"
    " created_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz NULL)",
    "CREATE INDEX upload_jobs_unfinished ON upload_jobs (state) WHERE state IN ('queued', 'running')",
    "CREATE TABLE upload_job_entries (id serial PRIMARY KEY,"
    " job varchar(64) NOT NULL REFERENCES upload_jobs (id) ON DELETE CASCADE, number integer NOT NULL,"
    " entry text NOT NULL, status varchar(10) NOT NULL, album_name varchar(200) NOT NULL,"
    " article_number varchar(200) NULL, image integer NULL REFERENCES images (id) ON DELETE SET NULL,"
    " sealed_delete_key varchar(128) NULL, reason_template text NULL, reason_params jsonb NULL,"
    " CONSTRAINT upload_job_entries_job_number UNIQUE (job, number))",
    "CREATE INDEX upload_job_entries_image ON upload_job_entries (image)",
]
BACKWARD_SQL = [
    "DROP TABLE IF EXISTS upload_job_entries",
    "DROP TABLE IF EXISTS upload_jobs",
]


class RawSQL(Table):
    pass


async def run_forward_sql():
    for statement in FORWARD_SQL:
        await RawSQL.raw(statement)


async def run_backward_sql():
    for statement in BACKWARD_SQL:
        await RawSQL.raw(statement)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="albums", description=DESCRIPTION)
    manager.add_raw(run_forward_sql)
    manager.add_raw_backwards(run_backward_sql)
    return manager
