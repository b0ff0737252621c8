"""Where the bytes of images live: the local folder (images/storage.py, the default) or an
S3-compatible bucket (s3.py), behind one small interface (objects.py)."""
