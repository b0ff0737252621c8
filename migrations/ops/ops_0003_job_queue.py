"""The job queue's tables: procrastinate's schema (procrastinate_jobs, _workers, _events,
_periodic_defers and their functions), as the pinned procrastinate (requirements.txt) ships it.

ZIP batches and the scheduled backups and scrubs are its tasks
(src/imagehost/tasks/). An upgrade of procrastinate that changes its schema comes with a migration
here that runs the upgrade's files from procrastinate/sql/migrations/, in their order.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-02T20:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "The job queue (procrastinate's schema)."


class RawSQL(Table):
    pass


async def _execute(script: str) -> None:
    """A script of many statements (and $$ bodies) in the migration's own transaction: asyncpg's
    execute without arguments sends it as one simple query; Piccolo's raw would prepare it."""
    engine = RawSQL._meta.db
    transaction = engine.current_transaction.get()
    if transaction is not None:
        await transaction.connection.execute(script)
        return
    connection = await engine.get_new_connection()
    try:
        await connection.execute(script)
    finally:
        await connection.close()


async def create_queue():
    from procrastinate.schema import SchemaManager

    await _execute(SchemaManager.get_schema())


async def drop_queue():
    await _execute(
        "DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs,"
        " procrastinate_workers CASCADE;"
        " DROP FUNCTION IF EXISTS procrastinate_defer_jobs_v1, procrastinate_defer_periodic_job_v2,"
        " procrastinate_fetch_job_v2, procrastinate_finish_job_v1, procrastinate_cancel_job_v1,"
        " procrastinate_retry_job_v1, procrastinate_retry_job_v2, procrastinate_notify_queue_job_inserted_v1,"
        " procrastinate_notify_queue_abort_job_v1, procrastinate_trigger_function_status_events_insert_v1,"
        " procrastinate_trigger_function_status_events_update_v1, procrastinate_trigger_function_scheduled_events_v1,"
        " procrastinate_trigger_abort_requested_events_procedure_v1, procrastinate_unlink_periodic_defers_v1,"
        " procrastinate_register_worker_v1, procrastinate_unregister_worker_v1, procrastinate_update_heartbeat_v1,"
        " procrastinate_prune_stalled_workers_v1 CASCADE;"
        " DROP TYPE IF EXISTS procrastinate_job_status, procrastinate_job_event_type, procrastinate_job_to_defer_v1"
        " CASCADE;"
    )


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="ops", description=DESCRIPTION)
    manager.add_raw(create_queue)
    manager.add_raw_backwards(drop_queue)
    return manager
