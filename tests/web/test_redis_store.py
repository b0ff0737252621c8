"""REDIS_URL: the shared stores in a real redis-server (Debian's, started here on a loopback port):
Litestar's store semantics, two app instances counting one client together, and Redis going away
(no request turns into a 500, the limit is not enforced meanwhile, one warning)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import redis
from anyio.from_thread import start_blocking_portal
from litestar.testing import TestClient

from imagehost.app import create_app
from imagehost.settings import Settings, SettingsError
from imagehost.web.stores import PostgresStore, RedisSharedStore, SharedStores
from tests.conftest import png_bytes, run_sql, upload
from tests.live import free_port, require


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def start_redis(folder: Path, port: int | None = None) -> RedisServer:
    require("redis-server")
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen([*command, "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(f"redis://127.0.0.1:{port}/0", process)
    client = redis.Redis.from_url(server.url)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                server.stop()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)
        finally:
            client.close()
    return server


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


def test_the_store_keeps_litestars_semantics_in_redis(redis_server):
    async def go() -> None:
        root = RedisSharedStore.from_url(redis_server.url)
        limits, other = root.with_namespace("limits"), root.with_namespace("other")
        try:
            await limits.set("client", b"3", expires_in=60)
            await other.set("client", "elsewhere")
            assert await limits.get("client") == b"3" and await other.get("client") == b"elsewhere"
            assert 0 < await limits.expires_in("client") <= 60
            await limits.get("client", renew_for=600)
            assert 60 < await limits.expires_in("client") <= 600
            await limits.set("short", b"x", expires_in=1)
            await asyncio.sleep(1.2)
            assert await limits.get("short") is None and not await limits.exists("short")
            await limits.delete_all()  # this namespace only
            assert await limits.get("client") is None and await other.get("client") == b"elsewhere"
        finally:
            await root.close()

    asyncio.run(go())
    keys = redis.Redis.from_url(redis_server.url).keys("*")
    assert keys == [b"imagehost_other:client"]  # Litestar's key layout, under our namespace


def test_two_app_instances_on_one_redis_share_the_upload_limit(settings, redis_server):
    limited = replace(settings, upload_rate_limit=3, redis_url=redis_server.url)
    first, second = create_app(limited), create_app(limited)
    with start_blocking_portal(backend="asyncio") as portal:  # see test_stores.py: one loop for both
        one = TestClient(first, base_url="http://testserver.local")
        two = TestClient(second, base_url="http://testserver.local")
        one.blocking_portal = two.blocking_portal = portal
        with one, two:
            answers = [upload(client, png_bytes()) for client in (one, two, one, two, one)]
    assert [answer.status_code for answer in answers] == [201, 201, 201, 429, 429]
    assert int(answers[3].headers["retry-after"]) > 0
    assert redis.Redis.from_url(redis_server.url).keys("*") == [
        b"imagehost_upload_rate_limit:RateLimitMiddleware::testclient"
    ]
    assert run_sql(settings.database_url, "SELECT count(*) FROM shared_store")[0][0] == 0  # not PostgreSQL


def test_redis_going_away_costs_no_upload_and_warns_once(make_client, tmp_path, app_log):
    server = start_redis(tmp_path / "redis")
    try:
        client = make_client(upload_rate_limit=2, redis_url=server.url)
        assert [upload(client, png_bytes()).status_code for _ in range(3)] == [201, 201, 429]
        server.stop()
        # Redis is away: the uploads go on (the limit is not enforced), nothing answers 500.
        assert [upload(client, png_bytes()).status_code for _ in range(3)] == [201, 201, 201]
        assert sum("rate limits are not enforced until Redis answers" in line for line in app_log()) == 1
        # Back on the same port: counted again from nothing.
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        server = start_redis(tmp_path / "redis-again", port)
        assert [upload(client, png_bytes()).status_code for _ in range(3)] == [201, 201, 429]
    finally:
        server.stop()


def test_a_silent_redis_never_hangs_or_refuses_an_upload(make_client, tmp_path, app_log):
    """Redis stopped with SIGSTOP: connections are accepted, nothing answers. Each request waits for
    the store's timeout (REDIS_TIMEOUT_SECONDS, 2 s), then goes on unlimited; SIGCONT counts again."""
    import signal

    server = start_redis(tmp_path / "redis")
    try:
        client = make_client(upload_rate_limit=2, redis_url=server.url)
        assert [upload(client, png_bytes()).status_code for _ in range(3)] == [201, 201, 429]
        server.process.send_signal(signal.SIGSTOP)
        try:
            for _ in range(2):
                began = time.monotonic()
                assert upload(client, png_bytes()).status_code == 201
                assert time.monotonic() - began < 30  # a hang fails (the store's timeout is 2 s)
            assert sum("rate limits are not enforced until Redis answers" in line for line in app_log()) == 1
        finally:
            server.process.send_signal(signal.SIGCONT)
        # Answering again: the client's earlier count is still there (the window has not passed).
        assert upload(client, png_bytes()).status_code == 429
    finally:
        server.stop()


def test_without_redis_url_the_stores_are_in_postgresql_and_a_bad_url_is_refused(settings):
    assert isinstance(SharedStores("", database=None).root, PostgresStore)  # type: ignore[arg-type]
    assert Settings.from_env({"REDIS_URL": " redis://cache:6379/1 "}).redis_url == "redis://cache:6379/1"
    with pytest.raises(SettingsError, match="REDIS_URL"):
        Settings.from_env({"REDIS_URL": "cache:6379"})
