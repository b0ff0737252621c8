"""Where the bytes of images live: the local folder (images/storage.py, the default) or an
S3-compatible bucket (s3.py, bucket.py), behind one interface (files.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagehost.images.storage import ImageStore
    from imagehost.settings import Settings
    from imagehost.storage.files import ImageFiles
    from imagehost.storage.objects import ObjectStore
    from imagehost.storage.spools import Spools


def object_store(settings: Settings) -> ObjectStore | None:
    """The bucket of STORAGE=s3, or None for the folder."""
    if not settings.in_bucket:
        return None
    from imagehost.storage.s3 import S3ObjectStore

    return S3ObjectStore(settings)


def image_files(settings: Settings, store: ImageStore) -> ImageFiles:
    """STORAGE=s3: the bucket; otherwise the folder `store` (IMAGES_DIR)."""
    if (objects := object_store(settings)) is not None:
        from imagehost.storage.bucket import BucketImageStore

        return BucketImageStore(objects, settings.thumbnail_sizes)
    from imagehost.storage.local import LocalFiles

    return LocalFiles(store)


def job_spools(files: ImageFiles, store: ImageStore) -> Spools:
    """Where ZIPs wait for their jobs: beside the images `files` (image_files' choice, and its
    bucket client): the bucket's `jobs/` with STORAGE=s3, else IMAGES_DIR/.staging/jobs."""
    from imagehost.storage.bucket import BucketImageStore
    from imagehost.storage.spools import BucketSpools, FolderSpools

    if isinstance(files, BucketImageStore):
        return BucketSpools(files.objects)
    return FolderSpools(store.staging / "jobs")
