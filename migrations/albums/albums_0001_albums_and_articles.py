"""Albums, their articles, and the link of an image to both (the images table is not changed).

Every listing reads an index: albums by name, an album's articles by code, an album's or an
article's images newest first (by image id, which grows with upload time) and in photo order,
and the duplicate test (an article's images by the SHA-256 of the file as uploaded).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-02T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Albums, articles and album_images."

FORWARD_SQL = [
    "CREATE TABLE albums (id serial PRIMARY KEY, name varchar(200) NOT NULL UNIQUE,"
    " created_by_sub varchar(255) NULL, created_by_name varchar(255) NULL,"
    " created_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE articles (id serial PRIMARY KEY,"
    " album integer NOT NULL REFERENCES albums (id) ON DELETE CASCADE, code varchar(200) NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT now(), CONSTRAINT articles_album_code UNIQUE (album, code))",
    "CREATE TABLE album_images (id serial PRIMARY KEY,"
    " image integer NOT NULL UNIQUE REFERENCES images (id) ON DELETE CASCADE,"
    " album integer NOT NULL REFERENCES albums (id) ON DELETE CASCADE,"
    " article integer NOT NULL REFERENCES articles (id) ON DELETE CASCADE,"
    " position integer NOT NULL DEFAULT 0, source_sha256 varchar(64) NOT NULL)",
    "CREATE INDEX album_images_album_newest ON album_images (album, image DESC)",
    "CREATE INDEX album_images_article_newest ON album_images (article, image DESC)",
    "CREATE INDEX album_images_article_position ON album_images (article, position)",
    "CREATE INDEX album_images_article_source ON album_images (article, source_sha256)",
]
BACKWARD_SQL = [
    "DROP TABLE IF EXISTS album_images",
    "DROP TABLE IF EXISTS articles",
    "DROP TABLE IF EXISTS albums",
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
