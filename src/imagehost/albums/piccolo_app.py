from pathlib import Path

from piccolo.conf.apps import AppConfig

from imagehost.albums.tables import Album, AlbumImage, Article

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations" / "albums"

APP_CONFIG = AppConfig(
    app_name="albums",
    migrations_folder_path=str(MIGRATIONS),
    table_classes=[Album, Article, AlbumImage],
    migration_dependencies=["imagehost.images.piccolo_app"],
    commands=[],
)
