from pathlib import Path

from piccolo.conf.apps import AppConfig

from imagehost.ops.tables import OperationState

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations" / "ops"

APP_CONFIG = AppConfig(
    app_name="ops",
    migrations_folder_path=str(MIGRATIONS),
    table_classes=[OperationState],
    migration_dependencies=[],
    commands=[],
)
