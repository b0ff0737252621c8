from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T00:50:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Index for listing one uploader's images newest first."


class RawSQL(Table):
    pass


async def add_uploader_index():
    await RawSQL.raw("CREATE INDEX images_by_uploader ON images (uploader_sub, uploaded_at, id)")


async def drop_uploader_index():
    await RawSQL.raw("DROP INDEX IF EXISTS images_by_uploader")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="images", description=DESCRIPTION)
    manager.add_raw(add_uploader_index)
    manager.add_raw_backwards(drop_uploader_index)
    return manager
