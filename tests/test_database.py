"""The app's database pool at shutdown: a connection never given back does not hold the close for ever."""

from __future__ import annotations

import asyncio
import time

from imagehost import database as database_module
from imagehost.database import Database


def test_a_connection_never_given_back_is_closed_by_force(settings, monkeypatch, app_log):
    from imagehost.logging import configure_logging

    configure_logging(settings.log_dir, settings.log_max_bytes, settings.log_backups)
    monkeypatch.setattr(database_module, "CLOSE_TIMEOUT_SECONDS", 0.5)

    async def scenario() -> tuple[float, object]:
        database = Database(settings.database_url)
        await database.open()
        held = await database.engine.pool.acquire()  # a cut task's connection, never released
        await held.execute("BEGIN")
        started = time.monotonic()
        await database.close()
        return time.monotonic() - started, database.engine.pool

    seconds, pool = asyncio.run(scenario())
    assert seconds < 5 and pool is None
    assert any("Database: connections still in use" in line and "closed by force" in line for line in app_log())
