from pathlib import Path

from piccolo.conf.apps import AppConfig

from imagehost.images.tables import Image

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations" / "images"

APP_CONFIG = AppConfig(
    app_name="images",
    migrations_folder_path=str(MIGRATIONS),
    table_classes=[Image],
    migration_dependencies=[],
    commands=[],
)
