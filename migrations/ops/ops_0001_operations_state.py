"""The last outcome of each operation (backup, check, restore), kept as data for the statistics page."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-01T23:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "operations_state: the last backup's, check's and restore's outcome."


class RawSQL(Table):
    pass


async def create_table():
    await RawSQL.raw(
        "CREATE TABLE operations_state (kind varchar(16) PRIMARY KEY, at timestamptz NOT NULL,"
        " outcome varchar(16) NOT NULL, detail text NOT NULL DEFAULT '')"
    )


async def drop_table():
    await RawSQL.raw("DROP TABLE IF EXISTS operations_state")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="ops", description=DESCRIPTION)
    manager.add_raw(create_table)
    manager.add_raw_backwards(drop_table)
    return manager
