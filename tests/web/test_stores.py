"""The PostgreSQL store (web/stores.py): Litestar's store semantics, the rate limits it shares
between two app instances on one database, and a database that is away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta

import asyncpg
import pytest
import structlog
from anyio.from_thread import start_blocking_portal
from litestar.testing import TestClient

from imagehost.app import create_app
from imagehost.database import Database
from imagehost.web.stores import PostgresStore
from tests.conftest import png_bytes, run_sql, upload
from tests.live import free_port
from tests.test_migrations import piccolo

SHARED_STORE_MIGRATION = "2026-12-02T15:20:00:000000"


@pytest.fixture
def store_database(clean_database: str) -> str:
    run_sql(clean_database, "DELETE FROM shared_store")  # also without conftest's TRUNCATE
    return clean_database


@asynccontextmanager
async def opened(database_url: str) -> AsyncIterator[Database]:
    """The app's Database, opened and closed as its lifespan does."""
    database = Database(database_url)
    await database.open()
    try:
        yield database
    finally:
        await database.close()


async def fetch(database_url: str, query: str, *arguments: object) -> list[asyncpg.Record]:
    """run_sql for code already inside an event loop."""
    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetch(query, *arguments)
    finally:
        await connection.close()


def closed_port_url() -> str:
    return f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"


def test_set_get_replace_and_delete(store_database):
    database_url = store_database

    async def go() -> None:
        async with opened(database_url) as database:
            store = PostgresStore(database)
            assert await store.get("missing") is None
            assert not await store.exists("missing")
            await store.set("key", b"\x00first")
            assert await store.get("key") == b"\x00first"
            await store.set("key", "второй")  # text is stored as its UTF-8 bytes
            assert await store.get("key") == "второй".encode()
            assert await store.exists("key")
            await store.delete("key")
            await store.delete("key")  # a missing key: nothing to do
            assert await store.get("key") is None
            assert not await store.exists("key")

    asyncio.run(go())


def test_expired_values_are_never_read(store_database):
    database_url = store_database

    async def go() -> None:
        async with opened(database_url) as database:
            store = PostgresStore(database)
            await store.set("short", b"v", expires_in=timedelta(milliseconds=300))
            await store.set("forever", b"v")
            await store.set("zero", b"v", expires_in=0)  # as Litestar's own stores: 0 is no expiry
            assert await store.get("short") == b"v"
            await asyncio.sleep(0.4)
            assert await store.get("short") is None
            assert await store.get("short", renew_for=60) is None  # an expired key is not brought back
            assert not await store.exists("short")
            assert await store.expires_in("short") is None
            assert await store.expires_in("forever") == -1
            assert await store.expires_in("zero") == -1
            assert await store.expires_in("missing") is None

    asyncio.run(go())


def test_expires_in_and_renewal(store_database):
    database_url = store_database

    async def go() -> None:
        async with opened(database_url) as database:
            store = PostgresStore(database)
            await store.set("key", b"v", expires_in=60)
            assert 59 <= await store.expires_in("key") <= 60
            assert await store.get("key", renew_for=3600) == b"v"
            assert 3599 <= await store.expires_in("key") <= 3600
            assert await store.get("key", renew_for=timedelta(minutes=2)) == b"v"
            assert 119 <= await store.expires_in("key") <= 120
            assert await store.get("key") == b"v"  # a plain get leaves the expiry alone
            assert 119 <= await store.expires_in("key") <= 120
            await store.set("forever", b"v")
            assert await store.get("forever", renew_for=60) == b"v"  # no expiry to renew: none is added
            assert await store.expires_in("forever") == -1
            await store.set("key", b"w")  # a set replaces the expiry too
            assert await store.expires_in("key") == -1

    asyncio.run(go())


def test_namespaces_are_isolated_and_delete_all_takes_the_children(store_database):
    database_url = store_database

    async def go() -> None:
        async with opened(database_url) as database:
            root = PostgresStore(database)
            upload, login = root.with_namespace("upload"), root.with_namespace("login")
            child, sibling = upload.with_namespace("child"), root.with_namespace("uploadX")
            for number, store in enumerate([root, upload, login, child, sibling]):
                await store.set("key", str(number))
            assert [await s.get("key") for s in (root, upload, login, child, sibling)] == [b"0", b"1", b"2", b"3", b"4"]
            await upload.delete("key")
            assert await child.get("key") == b"3"  # a delete is one namespace's only
            await upload.set("key", b"1")
            await upload.delete_all()
            assert await upload.get("key") is None
            assert await child.get("key") is None
            assert [await s.get("key") for s in (root, login, sibling)] == [b"0", b"2", b"4"]
            await root.delete_all()
            assert (await fetch(database_url, "SELECT count(*) FROM shared_store"))[0][0] == 0
            with pytest.raises(ValueError):
                root.with_namespace("a/b")
            with pytest.raises(ValueError):
                root.with_namespace("")

    asyncio.run(go())


def test_expired_rows_are_deleted_by_a_set_at_most_once_a_minute(store_database):
    database_url = store_database
    expired = "INSERT INTO shared_store VALUES ('old', $1, '\\x00', now() - interval '1 second')"
    run_sql(database_url, expired, "one")

    async def go() -> None:
        async with opened(database_url) as database:
            store = PostgresStore(database).with_namespace("new")
            await store.set("key", b"v")  # the first set of this process sweeps
            assert await fetch(database_url, "SELECT key FROM shared_store WHERE namespace = 'old'") == []
            await fetch(database_url, expired, "two")
            await store.set("key", b"v")  # within the minute: no sweep
            assert len(await fetch(database_url, "SELECT key FROM shared_store WHERE namespace = 'old'")) == 1

    asyncio.run(go())


def test_the_table_is_unlogged_with_its_expiry_index(database_url):
    assert (
        run_sql(database_url, "SELECT relpersistence::text FROM pg_class WHERE relname = 'shared_store'")[0][0] == "u"
    )
    indexes = {
        row[0] for row in run_sql(database_url, "SELECT indexname FROM pg_indexes WHERE tablename = 'shared_store'")
    }
    assert indexes == {"shared_store_pkey", "shared_store_expires_at"}


def test_the_migration_can_be_reversed_and_replayed(database_url):
    run_sql(database_url, "DROP DATABASE IF EXISTS shared_store_migration_test")
    run_sql(database_url, "CREATE DATABASE shared_store_migration_test")
    fresh = database_url.replace("/images_test?", "/shared_store_migration_test?")
    exists = "SELECT tablename FROM pg_tables WHERE tablename IN ('shared_store', 'operations_state') ORDER BY 1"
    piccolo(fresh, "forwards", "all")
    assert [row[0] for row in run_sql(fresh, exists)] == ["operations_state", "shared_store"]
    piccolo(fresh, "backwards", "ops", f"--migration_id={SHARED_STORE_MIGRATION}", "--auto_agree")
    assert [row[0] for row in run_sql(fresh, exists)] == ["operations_state"]
    piccolo(fresh, "forwards", "all")
    assert [row[0] for row in run_sql(fresh, exists)] == ["operations_state", "shared_store"]
    run_sql(database_url, "DROP DATABASE shared_store_migration_test")


def test_an_unreachable_database_reads_nothing_writes_nothing_and_warns_once_a_minute():
    async def go() -> None:
        async with opened(closed_port_url()) as database:
            store = PostgresStore(database).with_namespace("upload_rate_limit")
            with structlog.testing.capture_logs() as logs:
                await store.set("key", b"v", expires_in=60)
                assert await store.get("key") is None
                assert await store.get("key", renew_for=60) is None
                assert not await store.exists("key")
                assert await store.expires_in("key") is None
                await store.delete("key")
                await store.delete_all()
            warnings = [entry for entry in logs if "rate limits are not enforced" in entry["event"]]
            assert len(warnings) == 1
            assert warnings[0]["log_level"] == "warning" and warnings[0]["action"] == "Database"

    asyncio.run(go())


def test_a_connection_that_dies_under_a_query_fails_open_and_the_next_call_reconnects(store_database):
    database_url = store_database

    async def go() -> None:
        async with opened(database_url) as database:
            store = PostgresStore(database)
            await store.set("key", b"v", expires_in=60)
            holder = await asyncpg.connect(database_url)
            try:
                with structlog.testing.capture_logs() as logs:
                    async with holder.transaction():
                        await holder.execute("SELECT 1 FROM shared_store WHERE key = 'key' FOR UPDATE")
                        renewal = asyncio.create_task(store.get("key", renew_for=60))  # waits for the row
                        ended = 0
                        for _ in range(100):  # its server process is ended mid-query, as by a restart
                            ended = await holder.fetchval(
                                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                            )
                            if ended:
                                break
                            await asyncio.sleep(0.05)
                        assert ended == 1
                        assert await renewal is None
            finally:
                await holder.close()
            assert any("connection lost" in entry["event"] for entry in logs)  # the Database was told
            assert any("rate limits are not enforced" in entry["event"] for entry in logs)
            assert await store.get("key") == b"v"  # the pool's next connection is a new one

    asyncio.run(go())


def test_two_app_instances_on_one_database_share_the_upload_limit(settings, store_database):
    """Two instances (each its own app, pool and store objects) count one client together."""
    limited = replace(settings, upload_rate_limit=3)
    first, second = create_app(limited), create_app(limited)
    # A TestClient runs its app on an event loop of its own, and Piccolo binds its tables to one
    # engine per process (the last opened): both apps run on one loop here, each with its own pool.
    with start_blocking_portal(backend="asyncio") as portal:
        one = TestClient(first, base_url="http://testserver.local")
        two = TestClient(second, base_url="http://testserver.local")
        one.blocking_portal = two.blocking_portal = portal
        with one, two:
            assert first.state.database.engine.pool is not second.state.database.engine.pool
            answers = [upload(client, png_bytes()) for client in (one, two, one, two, one)]
    # With a store per process, each instance would have let this client through three times.
    assert [answer.status_code for answer in answers] == [201, 201, 201, 429, 429]
    refused = answers[3]
    assert int(refused.headers["retry-after"]) > 0
    assert "wait" in refused.json()["error"]
    rows = run_sql(settings.database_url, "SELECT namespace FROM shared_store")
    assert [row[0] for row in rows] == ["imagehost/upload_rate_limit"]
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 3


def test_the_rate_limit_never_turns_an_unreachable_database_into_a_500(make_client, app_log):
    client = make_client(database_url=closed_port_url(), upload_rate_limit=3)
    for _ in range(4):
        assert (
            upload(client, png_bytes()).status_code == 503
        )  # the upload needs the database; the limit is not enforced meanwhile
    assert sum("rate limits are not enforced" in line for line in app_log()) == 1
