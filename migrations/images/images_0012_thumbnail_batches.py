"""thumbnail_batches: the batches of a thumbnail regeneration (`just thumbnails`) queued as tasks
of the job queue, and what each wrote when it ended (images/thumbnail_jobs.py). The command that
queued them reads the totals and removes its rows. Not backed up: it only ever holds runs in flight.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-03T07:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "thumbnail_batches: thumbnail regeneration batches on the job queue."


class RawSQL(Table):
    pass


async def create_table():
    await RawSQL.raw(
        "CREATE TABLE thumbnail_batches ("
        " run varchar(16) NOT NULL,"
        " first_id bigint NOT NULL,"
        " last_id bigint NOT NULL,"
        " task_id bigint NULL,"
        " looked integer NULL,"
        " made integer NULL,"
        " created_at timestamptz NOT NULL DEFAULT now(),"
        " finished_at timestamptz NULL,"
        " PRIMARY KEY (run, first_id))"
    )


async def drop_table():
    await RawSQL.raw("DROP TABLE IF EXISTS thumbnail_batches")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="images", description=DESCRIPTION)
    manager.add_raw(create_table)
    manager.add_raw_backwards(drop_table)
    return manager
