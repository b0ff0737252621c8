"""Where the bytes of images live: the local folder (images/storage.py, the default) or an
S3-compatible bucket (s3.py, bucket.py), behind one interface (files.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagehost.images.storage import ImageStore
    from imagehost.settings import Settings
    from imagehost.storage.files import ImageFiles


def image_files(settings: Settings, store: ImageStore) -> ImageFiles:
    """STORAGE=s3: the bucket; otherwise the folder `store` (IMAGES_DIR)."""
    if settings.storage == "s3":
        from imagehost.storage.bucket import BucketImageStore
        from imagehost.storage.s3 import S3ObjectStore

        return BucketImageStore(S3ObjectStore(settings), settings.thumbnail_sizes)
    from imagehost.storage.local import LocalFiles

    return LocalFiles(store)
