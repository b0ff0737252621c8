from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T00:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Catalogue sort index and a trigger-kept row count for images."

# The catalogue reads newest first (uploaded_at DESC, id DESC); one btree serves that order and,
# scanned backwards, the last pages. The catalogue needs the row count on every page; a count(*)
# scans the whole table, so a one-row table kept by triggers holds it instead.
FORWARD_SQL = [
    "CREATE INDEX images_catalogue_order ON images (uploaded_at, id)",
    "CREATE TABLE image_totals (id integer PRIMARY KEY CHECK (id = 1), total bigint NOT NULL)",
    "INSERT INTO image_totals (id, total) SELECT 1, count(*) FROM images",
    """
    CREATE FUNCTION image_totals_track() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE image_totals SET total = total + 1 WHERE id = 1;
        ELSIF TG_OP = 'TRUNCATE' THEN
            UPDATE image_totals SET total = 0 WHERE id = 1;
        ELSE
            UPDATE image_totals SET total = total - 1 WHERE id = 1;
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER images_count AFTER INSERT OR DELETE ON images FOR EACH ROW EXECUTE FUNCTION image_totals_track()",
    "CREATE TRIGGER images_truncated AFTER TRUNCATE ON images FOR EACH STATEMENT EXECUTE FUNCTION image_totals_track()",
]
BACKWARD_SQL = [
    "DROP TRIGGER IF EXISTS images_truncated ON images",
    "DROP TRIGGER IF EXISTS images_count ON images",
    "DROP FUNCTION IF EXISTS image_totals_track()",
    "DROP TABLE IF EXISTS image_totals",
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
    manager = MigrationManager(migration_id=ID, app_name="images", description=DESCRIPTION)
    manager.add_raw(run_forward_sql)
    manager.add_raw_backwards(run_backward_sql)
    return manager
