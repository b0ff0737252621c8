"""The PostgreSQL engine for the app and the commands (built from Settings, bound to every table), and which
of the driver's errors mean that the database is away."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import asyncpg
from piccolo.engine.postgres import PostgresEngine

from imagehost.accounts.piccolo_app import APP_CONFIG as ACCOUNTS_APP
from imagehost.albums.piccolo_app import APP_CONFIG as ALBUMS_APP
from imagehost.errors import OUTAGES, DatabaseUnavailable, ImageHostError
from imagehost.images.piccolo_app import APP_CONFIG as IMAGES_APP
from imagehost.logging import action_log
from imagehost.metrics import instruments
from imagehost.ops.piccolo_app import APP_CONFIG as OPS_APP

TABLES = [*IMAGES_APP.table_classes, *ACCOUNTS_APP.table_classes, *ALBUMS_APP.table_classes, *OPS_APP.table_classes]
# A server that does not answer a connection attempt within this is down (asyncpg's own default: 60 s).
CONNECT_TIMEOUT_SECONDS = 5.0
# How often the watcher asks the server "SELECT 1": while it answers, and while it does not.
PROBE_SECONDS = 2.0
RETRY_SECONDS = 1.0
CLOSE_TIMEOUT_SECONDS = 10  # at shutdown, how long the pool waits for its connections to come back


# The driver's errors that mean "PostgreSQL is unreachable", as opposed to a bug in a query.
DATABASE_OUTAGES = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InternalClientError,  # a connection the server dropped mid-operation
)


def raised_by_the_driver(error: BaseException) -> bool:
    """True when the error comes out of asyncpg's own code (the last frames of its traceback)."""
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_globals.get("__name__", "").startswith("asyncpg."):
            return True
        traceback = traceback.tb_next
    return False


def is_database_outage(error: BaseException) -> bool:
    """The driver's connection errors; and a socket's OSError (refused, reset, timed out) only when
    the driver raised it while connecting or talking to the server. An OSError anywhere else (a
    file the app cannot read, a full disk) is not the database's."""
    if isinstance(error, DATABASE_OUTAGES):
        return True
    return isinstance(error, OSError) and raised_by_the_driver(error)


def as_outage(error: BaseException) -> ImageHostError | None:
    """The error as one of the OUTAGES when it is one (a driver's lost connection becomes
    DatabaseUnavailable), else None: what a job rides out by trying again later."""
    if isinstance(error, OUTAGES):
        return error
    if is_database_outage(error):
        return DatabaseUnavailable(reason=f"{type(error).__name__}: {error}")
    return None


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


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".rstrip(": ")


class Database:
    """The app's PostgreSQL: the pool is opened at start if the server answers, else as soon as it does.

    The app starts and serves while the database is down (the pages that need it answer 503 and
    /ready says why). A watcher asks the server every few seconds; it logs the loss and the recovery
    once each ("Database: connection lost: ...", "Database: connection restored after N s."), and a
    request that fails on a dead connection reports the loss at once (web/errors.py). After every
    (re)connection `on_connect` runs: it settles the uploads and deletes a crash interrupted.
    """

    def __init__(
        self,
        database_url: str,
        *,
        max_connections: int = 10,
        on_connect: Callable[[], Coroutine[Any, Any, object]] | None = None,
    ) -> None:
        self.database_url = database_url
        self.max_connections = max_connections
        self.on_connect = on_connect
        self.engine: PostgresEngine | None = None
        self.log = action_log()
        self._down_since: float | None = None
        self._reason = ""
        self._wake = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    async def open(self) -> None:
        # Built here, not at import: constructing the engine already talks to the server (and only
        # prints a warning when it cannot).
        config = {"dsn": self.database_url, "timeout": CONNECT_TIMEOUT_SECONDS}
        self.engine = await anyio.to_thread.run_sync(lambda: PostgresEngine(config=config))
        for table in TABLES:
            table._meta.db = self.engine
        try:
            await self._start_pool()
        except Exception as error:  # whatever the cause, the app serves without it and keeps trying
            self._down_since, self._reason = time.monotonic(), describe(error)
            instruments.record_database_outage()
            self.log.error(
                f"cannot connect to PostgreSQL ({self._reason}): starting without it, retrying every"
                f" {RETRY_SECONDS:.0f} s.",
                action="Database",
            )
        else:
            self.log.info("connected to PostgreSQL.", action="Database")
            await self._connected()
        self._watcher = asyncio.create_task(self._watch())

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self.engine is not None and self.engine.pool is not None:
            pool = self.engine.pool
            try:
                # A connection a cut task never gave back would hold a graceful close for ever.
                async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                    await pool.close()
            except TimeoutError:
                self.log.error(
                    f"connections still in use {CLOSE_TIMEOUT_SECONDS} s into the shutdown: closed by force.",
                    action="Database",
                )
                pool.terminate()
            self.engine.pool = None
            self.log.info("disconnected from PostgreSQL.", action="Database")

    def lost(self, reason: str) -> None:
        """A query failed because the server is unreachable: log it (once per outage), probe at once."""
        if self._down_since is None:
            self._down_since, self._reason = time.monotonic(), reason
            self.log.error(f"connection lost: {reason}.", action="Database")
            instruments.record_database_outage()
            self._wake.set()

    async def _start_pool(self) -> None:
        assert self.engine is not None
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS + 1):
            await self.engine.start_connection_pool(min_size=1, max_size=self.max_connections)

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RETRY_SECONDS if self._down_since else PROBE_SECONDS)
            self._wake.clear()
            await self._probe()

    async def _probe(self) -> None:
        assert self.engine is not None
        try:
            if self.engine.pool is None:
                await self._start_pool()
            assert self.engine.pool is not None
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS + 1):
                await self.engine.pool.fetchval("SELECT 1")
        except Exception as error:
            self.lost(describe(error))
            return
        if self._down_since is not None:
            seconds = time.monotonic() - self._down_since
            self._down_since = None
            # Connections from before the outage may be dead without knowing it yet.
            await self.engine.pool.expire_connections()
            self.log.info(f"connection restored after {seconds:.0f} s.", action="Database")
            await self._connected()

    async def _connected(self) -> None:
        if self.on_connect is None:
            return
        try:
            # In a task of its own: a transaction that dies with its connection leaves Piccolo's
            # "current transaction" set in the context it ran in, which must not be the watcher's.
            await asyncio.create_task(self.on_connect())
        except Exception as error:  # logged and retried at the next recovery; never fatal
            self.log.error(f"after connecting: {describe(error)}.", action="Database")
