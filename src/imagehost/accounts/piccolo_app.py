from pathlib import Path

from piccolo.conf.apps import AppConfig

from imagehost.accounts.tables import ApiToken, Person

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations" / "accounts"

APP_CONFIG = AppConfig(
    app_name="accounts",
    migrations_folder_path=str(MIGRATIONS),
    table_classes=[ApiToken, Person],
    migration_dependencies=[],
    commands=[],
)
