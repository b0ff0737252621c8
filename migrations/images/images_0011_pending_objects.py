"""pending_objects: the objects an upload or a delete is about to write or remove in an object store
(STORAGE=s3), recorded before it touches them and removed once its image row's fate is known.

The bucket's counterpart of the local store's marker files (images/storage.py): a record left by a
process that died is settled by the image's row (storage/bucket.py). Not backed up: it only ever
holds what is in flight.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-02T16:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Objects of uploads and deletes in flight, for settling after a crash."


class RawSQL(Table):
    pass


async def create_table():
    await RawSQL.raw(
        "CREATE TABLE pending_objects ("
        " id bigserial PRIMARY KEY,"
        " stored_name text NOT NULL,"
        " keys text[] NOT NULL,"
        " started_at timestamptz NOT NULL DEFAULT now())"
    )
    await RawSQL.raw("CREATE INDEX pending_objects_started_at ON pending_objects (started_at)")


async def drop_table():
    await RawSQL.raw("DROP TABLE IF EXISTS pending_objects")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="images", description=DESCRIPTION)
    manager.add_raw(create_table)
    manager.add_raw_backwards(drop_table)
    return manager
