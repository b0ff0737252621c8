"""The PostgreSQL engine for the app and the commands: built from Settings, bound to every table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from piccolo.engine.postgres import PostgresEngine

from imagehost.accounts.piccolo_app import APP_CONFIG as ACCOUNTS_APP
from imagehost.images.piccolo_app import APP_CONFIG as IMAGES_APP
from imagehost.logging import action_log

TABLES = [*IMAGES_APP.table_classes, *ACCOUNTS_APP.table_classes]


@asynccontextmanager
async def connected(database_url: str, max_connections: int = 10) -> AsyncIterator[PostgresEngine]:
    """Open a connection pool for the tables and close it afterwards. Fails loudly if it cannot."""
    log = action_log()
    # Built here, not at import: constructing the engine already talks to the server.
    engine = await anyio.to_thread.run_sync(lambda: PostgresEngine(config={"dsn": database_url}))
    for table in TABLES:
        table._meta.db = engine
    try:
        await engine.start_connection_pool(min_size=1, max_size=max_connections)
    except Exception as error:
        log.error(f"cannot connect to PostgreSQL: {type(error).__name__}: {error}", action="Database")
        raise
    log.info("connected to PostgreSQL.", action="Database")
    try:
        yield engine
    finally:
        await engine.close_connection_pool()
        log.info("disconnected from PostgreSQL.", action="Database")
