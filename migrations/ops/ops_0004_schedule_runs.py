"""schedule_runs: when each scheduled job (backup, scrub) last ran well, and when a failed one is
tried again, shared by every scheduler (python -m imagehost schedule) on any machine; it was a
file in BACKUP_DIR, which only one machine sees."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-02T20:02:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "schedule_runs: the schedule's last runs."


class RawSQL(Table):
    pass


async def create_table():
    await RawSQL.raw(
        "CREATE TABLE schedule_runs (job varchar(16) PRIMARY KEY, ran_at timestamptz NULL, retry_at timestamptz NULL)"
    )


async def drop_table():
    await RawSQL.raw("DROP TABLE IF EXISTS schedule_runs")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="ops", description=DESCRIPTION)
    manager.add_raw(create_table)
    manager.add_raw_backwards(drop_table)
    return manager
