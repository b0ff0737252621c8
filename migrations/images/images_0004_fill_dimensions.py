"""Fill in width and height for images stored before those columns existed.

Reads only each file's header (no pixel decoding), with the parsers of the stored formats only.
The images folder comes from IMAGES_DIR, as for the app. Rows whose file is missing or unreadable
stay NULL; the consistency check reports them.
"""

import os
from pathlib import Path

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T00:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Fill in width and height of existing images from their files."

ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


class RawSQL(Table):
    pass


def displayed_size(path: Path) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path, formats=["JPEG", "PNG", "GIF"]) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in ROTATED:
                width, height = height, width
            return width, height
    except Exception:  # a missing or damaged file leaves the row as it is
        return None


async def fill_dimensions():
    images_dir = Path(os.environ.get("IMAGES_DIR", "images"))
    rows = await RawSQL.raw("SELECT id, stored_name FROM images WHERE width IS NULL")
    for row in rows:
        size = displayed_size(images_dir / row["stored_name"])
        if size:
            await RawSQL.raw("UPDATE images SET width = {}, height = {} WHERE id = {}", size[0], size[1], row["id"])


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="images", description=DESCRIPTION)
    manager.add_raw(fill_dimensions)
    return manager
