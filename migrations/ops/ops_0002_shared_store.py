"""shared_store: the key/value store that every process and instance of the app shares through
PostgreSQL (web/stores.py); today it holds the rate limits' per-client counts.

UNLOGGED: no write-ahead log for it, so it is cheap to write on every counted request. PostgreSQL
empties it after a crash (and it is not copied to streaming replicas); losing a minute's rate-limit
counts is harmless, the clients simply start counting again.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-02T15:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "shared_store: the app's shared key/value store (rate-limit counts)."


class RawSQL(Table):
    pass


async def create_table():
    await RawSQL.raw(
        "CREATE UNLOGGED TABLE shared_store (namespace text NOT NULL, key text NOT NULL, value bytea NOT NULL,"
        " expires_at timestamptz, PRIMARY KEY (namespace, key))"
    )
    # For the once-a-minute sweep of expired rows; rows that never expire are not in it.
    await RawSQL.raw("CREATE INDEX shared_store_expires_at ON shared_store (expires_at) WHERE expires_at IS NOT NULL")


async def drop_table():
    await RawSQL.raw("DROP TABLE IF EXISTS shared_store")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="ops", description=DESCRIPTION)
    manager.add_raw(create_table)
    manager.add_raw_backwards(drop_table)
    return manager
