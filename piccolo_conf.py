"""Piccolo's entry point, used by `piccolo migrations ...` (the app builds its own engine from Settings)."""

import os

from piccolo.conf.apps import AppRegistry
from piccolo.engine.postgres import PostgresEngine

from imagehost.settings import DEFAULT_DATABASE_URL

DB = PostgresEngine(config={"dsn": os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)})

APP_REGISTRY = AppRegistry(
    apps=[
        "imagehost.images.piccolo_app",
        "imagehost.accounts.piccolo_app",
        "imagehost.ops.piccolo_app",
        "imagehost.albums.piccolo_app",
    ]
)
