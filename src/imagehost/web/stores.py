"""Litestar's stores shared by every app process and instance: in Redis or Valkey when REDIS_URL is
set (RedisSharedStore), else in PostgreSQL (the shared_store table, through the app's own pool).

Every uvicorn process (WEB_CONCURRENCY) and every machine sees the same entries, so a per-client
rate limit counts a client's requests wherever they land. Litestar's default store is a dict in
each process: with two processes, each one lets a client through the whole limit. Neither store
turns a request into a 500 when its server is away: the limits are then not enforced, and said so.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
from litestar.stores.base import NamespacedStore
from litestar.stores.redis import RedisStore
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError

from imagehost.database import CONNECT_TIMEOUT_SECONDS, describe, is_database_outage
from imagehost.logging import action_log

if TYPE_CHECKING:
    from imagehost.database import Database

# Expired rows are never read; each process deletes them at most this often, after a set.
SWEEP_SECONDS = 60.0
# While PostgreSQL does not answer, each process says so at most this often.
WARNING_SECONDS = 60.0
QUERY_TIMEOUT_SECONDS = CONNECT_TIMEOUT_SECONDS + 1
# Between a namespace and its children: delete_all on "a" also clears "a/b", never "ab".
SEPARATOR = "/"
# Its rows are counts that expire within minutes: backups leave them out (ops/backup/make.py).
TABLE = "shared_store"
# What the driver raises when the server is away, refuses, or the table is missing (not migrated);
# OSError: a refused or reset socket, and asyncio.timeout's TimeoutError.
STORE_FAILURES = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError, OSError)

# A live row: no expiry, or one still ahead. The database's clock is the one every process shares.
_LIVE = "namespace = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > now())"
# $4 NULL (no expiry) makes expires_at NULL.
_SET = (
    "INSERT INTO shared_store (namespace, key, value, expires_at)"
    " VALUES ($1, $2, $3, now() + $4::float8 * interval '1 second')"
    " ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at"
)
_GET = f"SELECT value FROM shared_store WHERE {_LIVE}"  # noqa: S608 (our own constants)
_GET_AND_RENEW = (
    "UPDATE shared_store SET expires_at = CASE WHEN expires_at IS NULL THEN NULL"  # noqa: S608 (our own constants)
    f" ELSE now() + $3::float8 * interval '1 second' END WHERE {_LIVE} RETURNING value"
)
_DELETE = "DELETE FROM shared_store WHERE namespace = $1 AND key = $2"
_DELETE_ALL = "DELETE FROM shared_store WHERE namespace = $1 OR starts_with(namespace, $1 || $2)"
_EXISTS = f"SELECT EXISTS (SELECT 1 FROM shared_store WHERE {_LIVE})"  # noqa: S608 (our own constants)
_EXPIRES_IN = (
    "SELECT CASE WHEN expires_at IS NULL THEN -1"  # noqa: S608 (our own constants)
    f" ELSE floor(extract(epoch FROM expires_at - now()))::int END FROM shared_store WHERE {_LIVE}"
)
_SWEEP = "DELETE FROM shared_store WHERE expires_at <= now()"


# Redis answers in microseconds: one that does not within this is treated as away.
REDIS_TIMEOUT_SECONDS = 2.0
# A refused or reset socket is an OSError; redis-py's own errors (timeouts too) are RedisErrors.
REDIS_FAILURES = (RedisError, OSError)


def _seconds(duration: int | timedelta | None) -> float | None:
    """None for no expiry; like Litestar's own stores, 0 means none too."""
    if isinstance(duration, timedelta):
        duration = duration.total_seconds()
    return float(duration) if duration else None


@dataclass
class _Upkeep:
    """Per process, shared by a store and every namespace made from it."""

    swept_at: float = -math.inf
    warned_at: float = -math.inf

    def warn(self, reason: str, server: str, action: str) -> None:
        now = time.monotonic()
        if now - self.warned_at >= WARNING_SECONDS:
            self.warned_at = now
            action_log().warning(
                f"shared store unavailable ({reason}): rate limits are not enforced until {server} answers.",
                action=action,
            )


class PostgresStore(NamespacedStore):
    """A Litestar NamespacedStore in PostgreSQL's shared_store table (migrations/ops/ops_0002).

    Semantics as Litestar's MemoryStore and RedisStore: `set` replaces a value and its expiry (0 or
    None: none); `get` returns None for a missing or expired key, and with `renew_for` moves the
    expiry of a key that has one, in the same statement; `exists` and `expires_in` (-1: no expiry)
    ignore expired rows; `delete_all` clears this namespace and its children (`with_namespace`).
    Each call is one statement on the app's pool (Database.engine); no pool of its own.

    PostgreSQL away (not yet connected, gone mid-way, or not migrated): no call raises. `get`
    returns None, `set` and the deletes do nothing, `exists` is False, and a warning is logged at
    most once a minute per process. The rate limits are then not enforced until the database is
    back; the pages that need the database answer 503 meanwhile anyway.

    The rate limiter reads a client's count and writes it back in two calls; it serialises them
    within one process, not across processes, so two requests of one client arriving at the same
    moment in two processes can be counted once. Requests one after another are counted exactly.
    """

    __slots__ = ("_database", "_upkeep")

    def __init__(self, database: Database, namespace: str = "imagehost", *, upkeep: _Upkeep | None = None) -> None:
        if not namespace:
            raise ValueError("a PostgresStore needs a namespace")
        self._database = database
        self.namespace = namespace
        self._upkeep = upkeep or _Upkeep()

    def with_namespace(self, namespace: str) -> PostgresStore:  # type: ignore[override]
        if not namespace or SEPARATOR in namespace:
            raise ValueError(f"not a namespace name: {namespace!r}")
        return type(self)(self._database, f"{self.namespace}{SEPARATOR}{namespace}", upkeep=self._upkeep)

    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        if isinstance(value, str):
            value = value.encode("utf-8")
        done = await self._run("execute", _SET, self.namespace, key, value, _seconds(expires_in))
        if done is not None and time.monotonic() - self._upkeep.swept_at >= SWEEP_SECONDS:
            self._upkeep.swept_at = time.monotonic()
            await self._run("execute", _SWEEP)

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        renewal = _seconds(renew_for)
        if renewal is None:
            return await self._run("fetchval", _GET, self.namespace, key)
        return await self._run("fetchval", _GET_AND_RENEW, self.namespace, key, renewal)

    async def delete(self, key: str) -> None:
        await self._run("execute", _DELETE, self.namespace, key)

    async def delete_all(self) -> None:
        await self._run("execute", _DELETE_ALL, self.namespace, SEPARATOR)

    async def exists(self, key: str) -> bool:
        return bool(await self._run("fetchval", _EXISTS, self.namespace, key))

    async def expires_in(self, key: str) -> int | None:
        return await self._run("fetchval", _EXPIRES_IN, self.namespace, key)

    async def _run(self, method: str, query: str, *arguments: object) -> Any:
        """One statement on the app's pool: its result, or None when PostgreSQL cannot answer."""
        engine = self._database.engine
        pool = engine.pool if engine is not None else None
        if pool is None:
            self._warn("not connected to PostgreSQL")
            return None
        try:
            async with asyncio.timeout(QUERY_TIMEOUT_SECONDS):
                return await getattr(pool, method)(query, *arguments)
        except STORE_FAILURES as error:  # asyncio.timeout's TimeoutError is an OSError too
            timed_out = isinstance(error, TimeoutError)
            reason = f"no answer in {QUERY_TIMEOUT_SECONDS:.0f} s" if timed_out else describe(error)
            if is_database_outage(error):
                self._database.lost(reason)  # logs the loss once and makes the watcher look at once
            self._warn(reason)
            return None

    def _warn(self, reason: str) -> None:
        self._upkeep.warn(reason, "PostgreSQL", "Database")


class RedisSharedStore(RedisStore):
    """Litestar's RedisStore on REDIS_URL (Redis or Valkey), failing open as PostgresStore does.

    Redis away (refused, reset, or silent past REDIS_TIMEOUT_SECONDS): no call raises; `get` returns
    None, `set` and the deletes do nothing, `exists` is False, and a warning is logged at most once a
    minute per process. Namespaces are Litestar's (`imagehost_upload_rate_limit:<key>`).
    """

    __slots__ = ("_upkeep",)

    def __init__(
        self, redis: Redis, namespace: str, handle_client_shutdown: bool = False, *, upkeep: _Upkeep | None = None
    ) -> None:
        super().__init__(redis, namespace=namespace, handle_client_shutdown=handle_client_shutdown)
        self._upkeep = upkeep or _Upkeep()

    @classmethod
    def from_url(cls, url: str, namespace: str = "imagehost") -> RedisSharedStore:
        pool = ConnectionPool.from_url(
            url,
            decode_responses=False,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        return cls(Redis(connection_pool=pool), namespace, handle_client_shutdown=True)

    def with_namespace(self, namespace: str) -> RedisSharedStore:
        return type(self)(
            self._redis, f"{self.namespace}_{namespace}", self.handle_client_shutdown, upkeep=self._upkeep
        )

    async def close(self) -> None:
        await self._shutdown()

    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        await self._guarded(super().set(key, value, expires_in or None), None)

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        return await self._guarded(super().get(key, renew_for), None)

    async def delete(self, key: str) -> None:
        await self._guarded(super().delete(key), None)

    async def delete_all(self) -> None:
        await self._guarded(super().delete_all(), None)

    async def exists(self, key: str) -> bool:
        return await self._guarded(super().exists(key), False)

    async def expires_in(self, key: str) -> int | None:
        return await self._guarded(super().expires_in(key), None)

    async def _guarded(self, call: Any, otherwise: Any) -> Any:
        try:
            return await call
        except REDIS_FAILURES as error:
            self._upkeep.warn(f"{type(error).__name__}: {error}", "Redis", "Storage")
            return otherwise


class SharedStores:
    """The stores Litestar asks for by name (upload_rate_limit, login_rate_limit): namespaces of one
    store in Redis when `redis_url` is set, else in PostgreSQL. `close` at the app's shutdown."""

    def __init__(self, redis_url: str, database: Database) -> None:
        self.root: NamespacedStore = RedisSharedStore.from_url(redis_url) if redis_url else PostgresStore(database)

    def named(self, name: str) -> NamespacedStore:
        return self.root.with_namespace(name)

    async def close(self) -> None:
        if isinstance(self.root, RedisSharedStore):
            await self.root.close()
