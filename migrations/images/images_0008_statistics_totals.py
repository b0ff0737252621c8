"""Totals per format, per uploader and per day, kept by triggers like image_totals, so that the
operator's statistics page reads a few small tables instead of grouping every image row."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T02:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Trigger-kept totals per format, uploader and day for the statistics page."

FORWARD_SQL = [
    "CREATE TABLE image_format_totals (file_format varchar(8) PRIMARY KEY,"
    " images bigint NOT NULL DEFAULT 0, bytes bigint NOT NULL DEFAULT 0)",
    # '' stands for anonymous uploads (a primary key cannot hold NULL).
    "CREATE TABLE image_uploader_totals (uploader_sub varchar(255) PRIMARY KEY, uploader_name varchar(255),"
    " images bigint NOT NULL DEFAULT 0, bytes bigint NOT NULL DEFAULT 0)",
    "CREATE TABLE image_daily_totals (day date PRIMARY KEY, images bigint NOT NULL DEFAULT 0)",
    "INSERT INTO image_format_totals SELECT file_format, count(*), coalesce(sum(size_bytes), 0)"
    " FROM images GROUP BY file_format",
    "INSERT INTO image_uploader_totals SELECT coalesce(uploader_sub, ''), max(uploader_name), count(*),"
    " coalesce(sum(size_bytes), 0) FROM images GROUP BY coalesce(uploader_sub, '')",
    "INSERT INTO image_daily_totals SELECT (uploaded_at AT TIME ZONE 'UTC')::date, count(*) FROM images GROUP BY 1",
    """
    CREATE FUNCTION image_statistics_track() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'TRUNCATE' THEN
            DELETE FROM image_format_totals;
            DELETE FROM image_uploader_totals;
            DELETE FROM image_daily_totals;
        ELSIF TG_OP = 'INSERT' THEN
            INSERT INTO image_format_totals VALUES (NEW.file_format, 1, NEW.size_bytes)
                ON CONFLICT (file_format) DO UPDATE SET images = image_format_totals.images + 1,
                bytes = image_format_totals.bytes + EXCLUDED.bytes;
            INSERT INTO image_uploader_totals VALUES (coalesce(NEW.uploader_sub, ''), NEW.uploader_name, 1, NEW.size_bytes)
                ON CONFLICT (uploader_sub) DO UPDATE SET images = image_uploader_totals.images + 1,
                bytes = image_uploader_totals.bytes + EXCLUDED.bytes,
                uploader_name = coalesce(EXCLUDED.uploader_name, image_uploader_totals.uploader_name);
            INSERT INTO image_daily_totals VALUES ((NEW.uploaded_at AT TIME ZONE 'UTC')::date, 1)
                ON CONFLICT (day) DO UPDATE SET images = image_daily_totals.images + 1;
        ELSIF TG_OP = 'DELETE' THEN
            UPDATE image_format_totals SET images = images - 1, bytes = bytes - OLD.size_bytes
                WHERE file_format = OLD.file_format;
            UPDATE image_uploader_totals SET images = images - 1, bytes = bytes - OLD.size_bytes
                WHERE uploader_sub = coalesce(OLD.uploader_sub, '');
            UPDATE image_daily_totals SET images = images - 1
                WHERE day = (OLD.uploaded_at AT TIME ZONE 'UTC')::date;
        ELSIF TG_OP = 'UPDATE' THEN
            -- Rare (operator repairs, tests moving dates): count the row out and back in.
            UPDATE image_format_totals SET images = images - 1, bytes = bytes - OLD.size_bytes
                WHERE file_format = OLD.file_format;
            UPDATE image_uploader_totals SET images = images - 1, bytes = bytes - OLD.size_bytes
                WHERE uploader_sub = coalesce(OLD.uploader_sub, '');
            UPDATE image_daily_totals SET images = images - 1
                WHERE day = (OLD.uploaded_at AT TIME ZONE 'UTC')::date;
            INSERT INTO image_format_totals VALUES (NEW.file_format, 1, NEW.size_bytes)
                ON CONFLICT (file_format) DO UPDATE SET images = image_format_totals.images + 1,
                bytes = image_format_totals.bytes + EXCLUDED.bytes;
            INSERT INTO image_uploader_totals VALUES (coalesce(NEW.uploader_sub, ''), NEW.uploader_name, 1, NEW.size_bytes)
                ON CONFLICT (uploader_sub) DO UPDATE SET images = image_uploader_totals.images + 1,
                bytes = image_uploader_totals.bytes + EXCLUDED.bytes;
            INSERT INTO image_daily_totals VALUES ((NEW.uploaded_at AT TIME ZONE 'UTC')::date, 1)
                ON CONFLICT (day) DO UPDATE SET images = image_daily_totals.images + 1;
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER images_statistics AFTER INSERT OR DELETE OR UPDATE OF file_format, size_bytes,"
    " uploader_sub, uploaded_at ON images FOR EACH ROW EXECUTE FUNCTION image_statistics_track()",
    "CREATE TRIGGER images_statistics_truncated AFTER TRUNCATE ON images"
    " FOR EACH STATEMENT EXECUTE FUNCTION image_statistics_track()",
]
BACKWARD_SQL = [
    "DROP TRIGGER IF EXISTS images_statistics_truncated ON images",
    "DROP TRIGGER IF EXISTS images_statistics ON images",
    "DROP FUNCTION IF EXISTS image_statistics_track()",
    "DROP TABLE IF EXISTS image_daily_totals",
    "DROP TABLE IF EXISTS image_uploader_totals",
    "DROP TABLE IF EXISTS image_format_totals",
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
