from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Timestamptz
from piccolo.columns.indexes import IndexMethod

ID = "2026-11-24T01:17:21:446940"
VERSION = "1.38.0"
DESCRIPTION = "Mark images whose file the consistency check found gone (when the operator keeps the row)."


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="images", description=DESCRIPTION)

    manager.add_column(
        table_class_name="Image",
        tablename="images",
        column_name="file_missing_since",
        db_column_name="file_missing_since",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    return manager
