"""Image and article counts kept by the database, so that an album card, an album's or article's
page and /api/count read one row instead of counting every image of the album.

albums.image_count and albums.article_count, articles.image_count: filled from the rows already
there, then kept by triggers on album_images (insert, delete, a move to another album or article)
and on articles (insert, delete, a move to another album).

Lock order, so that uploads, deletes and moves wait for each other rather than deadlock: the
triggers are deferred to the commit, so an upload or a delete has always taken the image_totals
row (the images triggers) before it changes a count, whatever order PostgreSQL fires the cascade
and the other triggers in; there the article's row comes before the album's, as in a move, which
locks its articles first, in id order, and changes two articles' or albums' rows in id order.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-02T00:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Trigger-kept image and article counts of albums and articles."

FORWARD_SQL = [
    "ALTER TABLE albums ADD COLUMN image_count integer NOT NULL DEFAULT 0,"
    " ADD COLUMN article_count integer NOT NULL DEFAULT 0",
    "ALTER TABLE articles ADD COLUMN image_count integer NOT NULL DEFAULT 0",
    # The triggers exist before the fill, in the same transaction: no row is counted twice or missed.
    """
    CREATE FUNCTION album_images_counted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE articles SET image_count = image_count + 1 WHERE id = NEW.article;
            UPDATE albums SET image_count = image_count + 1 WHERE id = NEW.album;
        ELSIF TG_OP = 'DELETE' THEN
            -- A row deleted with its album or article (ON DELETE CASCADE) finds no row to change.
            UPDATE articles SET image_count = image_count - 1 WHERE id = OLD.article;
            UPDATE albums SET image_count = image_count - 1 WHERE id = OLD.album;
        ELSE
            IF NEW.article IS DISTINCT FROM OLD.article THEN
                PERFORM 1 FROM articles WHERE id IN (OLD.article, NEW.article) ORDER BY id FOR NO KEY UPDATE;
                UPDATE articles SET image_count = image_count - 1 WHERE id = OLD.article;
                UPDATE articles SET image_count = image_count + 1 WHERE id = NEW.article;
            END IF;
            IF NEW.album IS DISTINCT FROM OLD.album THEN
                PERFORM 1 FROM albums WHERE id IN (OLD.album, NEW.album) ORDER BY id FOR NO KEY UPDATE;
                UPDATE albums SET image_count = image_count - 1 WHERE id = OLD.album;
                UPDATE albums SET image_count = image_count + 1 WHERE id = NEW.album;
            END IF;
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION articles_counted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE albums SET article_count = article_count + 1 WHERE id = NEW.album;
        ELSIF TG_OP = 'DELETE' THEN
            UPDATE albums SET article_count = article_count - 1 WHERE id = OLD.album;
        ELSIF NEW.album IS DISTINCT FROM OLD.album THEN
            PERFORM 1 FROM albums WHERE id IN (OLD.album, NEW.album) ORDER BY id FOR NO KEY UPDATE;
            UPDATE albums SET article_count = article_count - 1 WHERE id = OLD.album;
            UPDATE albums SET article_count = article_count + 1 WHERE id = NEW.album;
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION album_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_TABLE_NAME = 'album_images' THEN
            UPDATE albums SET image_count = 0 WHERE image_count <> 0;
            UPDATE articles SET image_count = 0 WHERE image_count <> 0;
        ELSE
            UPDATE albums SET article_count = 0 WHERE article_count <> 0;
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE CONSTRAINT TRIGGER album_images_count AFTER INSERT OR DELETE OR UPDATE OF album, article"
    " ON album_images DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION album_images_counted()",
    "CREATE CONSTRAINT TRIGGER articles_count AFTER INSERT OR DELETE OR UPDATE OF album"
    " ON articles DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION articles_counted()",
    "CREATE TRIGGER album_images_truncated AFTER TRUNCATE ON album_images"
    " FOR EACH STATEMENT EXECUTE FUNCTION album_counts_truncated()",
    "CREATE TRIGGER articles_truncated AFTER TRUNCATE ON articles"
    " FOR EACH STATEMENT EXECUTE FUNCTION album_counts_truncated()",
    "UPDATE albums al SET image_count = c.images FROM"
    " (SELECT album, count(*) AS images FROM album_images GROUP BY album) c WHERE c.album = al.id",
    "UPDATE albums al SET article_count = c.articles FROM"
    " (SELECT album, count(*) AS articles FROM articles GROUP BY album) c WHERE c.album = al.id",
    "UPDATE articles ar SET image_count = c.images FROM"
    " (SELECT article, count(*) AS images FROM album_images GROUP BY article) c WHERE c.article = ar.id",
]
BACKWARD_SQL = [
    "DROP TRIGGER IF EXISTS articles_truncated ON articles",
    "DROP TRIGGER IF EXISTS album_images_truncated ON album_images",
    "DROP TRIGGER IF EXISTS articles_count ON articles",
    "DROP TRIGGER IF EXISTS album_images_count ON album_images",
    "DROP FUNCTION IF EXISTS album_counts_truncated()",
    "DROP FUNCTION IF EXISTS articles_counted()",
    "DROP FUNCTION IF EXISTS album_images_counted()",
    "ALTER TABLE articles DROP COLUMN IF EXISTS image_count",
    "ALTER TABLE albums DROP COLUMN IF EXISTS article_count, DROP COLUMN IF EXISTS image_count",
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
    manager = MigrationManager(migration_id=ID, app_name="albums", description=DESCRIPTION)
    manager.add_raw(run_forward_sql)
    manager.add_raw_backwards(run_backward_sql)
    return manager
