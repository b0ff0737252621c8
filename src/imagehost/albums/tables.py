"""An album holds articles (a product's code), an article holds images in photo order.

The images table is not changed: `album_images` links an image to its album and article. Deleting
an image (through ImageService, crash safe) removes its link by ON DELETE CASCADE.
"""

from piccolo.columns import ForeignKey, Integer, OnDelete, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from imagehost.images.tables import Image

MAX_NAME_LENGTH = 200


class Album(Table, tablename="albums"):
    name = Varchar(length=MAX_NAME_LENGTH, unique=True)  # NFC (albums/names.py)
    # Who created it (the principal's identity and display name); NULL for an anonymous upload.
    created_by_sub = Varchar(length=255, null=True, default=None)
    created_by_name = Varchar(length=255, null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    # Kept by triggers (migrations/albums/albums_0003_image_counts.py): never written by the app.
    image_count = Integer(default=0)
    article_count = Integer(default=0)


class Article(Table, tablename="articles"):
    """A product's code within one album (unique there)."""

    album = ForeignKey(Album, on_delete=OnDelete.cascade)
    code = Varchar(length=MAX_NAME_LENGTH)
    created_at = Timestamptz(default=TimestamptzNow())
    image_count = Integer(default=0)  # kept by a trigger, as Album's


class AlbumImage(Table, tablename="album_images"):
    """Where one image sits: its album, its article and its place in the article's photo order."""

    image = ForeignKey(Image, unique=True, on_delete=OnDelete.cascade)
    album = ForeignKey(Album, on_delete=OnDelete.cascade)
    article = ForeignKey(Article, on_delete=OnDelete.cascade)
    position = Integer(default=0)
    # SHA-256 of the file as it came in the archive (before metadata stripping): the duplicate test.
    source_sha256 = Varchar(length=64)
