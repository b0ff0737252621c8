from piccolo.columns import BigInt, Integer, SmallInt, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

# Ids are PostgreSQL integers (serial): a larger number names no image, and must not reach a query.
LARGEST_IMAGE_ID = 2**31 - 1


class Image(Table, tablename="images"):
    """One stored upload. The file is IMAGES_DIR/<stored_name>; the row is its only record."""

    stored_name = Varchar(length=64, unique=True)
    original_name = Text()
    size_bytes = BigInt()
    file_format = Varchar(length=8)
    sha256 = Varchar(length=64)
    uploaded_at = Timestamptz(default=TimestamptzNow())
    delete_key_hash = Varchar(length=64, secret=True)
    # As displayed: after the EXIF orientation is applied.
    width = Integer(null=True, default=None)
    height = Integer(null=True, default=None)
    # Set for images made by the conversion API: what it was given, and the JPEG quality used.
    source_format = Varchar(length=8, null=True, default=None)
    quality = SmallInt(null=True, default=None)
    # Who uploaded it (the OpenID Connect subject and display name); NULL for anonymous uploads.
    uploader_sub = Varchar(length=255, null=True, default=None)
    uploader_name = Varchar(length=255, null=True, default=None)
    # When the consistency check's repair found the file gone and the operator chose to keep the row
    # (`just check --repair --missing-rows=mark`); NULL for every image whose file is in place.
    file_missing_since = Timestamptz(null=True, default=None)
