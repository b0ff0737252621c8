"""Shared fixtures: a throwaway PostgreSQL migrated through the real migrations, the app, files."""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest
from litestar.testing import TestClient
from PIL import Image as PILImage

from imagehost.app import create_app
from imagehost.devdb import migrate, start_embedded_postgres
from imagehost.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CORPUS = PROJECT_ROOT.parent / "shared" / "corpus"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
ADMIN_TOKEN = "operator-token-for-tests"


def run_sql(database_url: str, query: str, *args: object) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(database_url)
        try:
            return await connection.fetch(query, *args)
        finally:
            await connection.close()

    return asyncio.run(go())


@pytest.fixture(scope="session")
def database_url() -> str:
    """One real PostgreSQL for the session, its schema made by the project's own migrations.

    Its data lives in its own temporary folder (not pytest's numbered ones, which a concurrent
    pytest run may prune) and is deleted when the session ends.
    """
    url = start_embedded_postgres(
        Path(tempfile.mkdtemp(prefix="imagehost-test-pg-")) / "data", delete_at_exit=True, database="images_test"
    )
    migrate(url, PROJECT_ROOT)
    return url


@pytest.fixture
def clean_database(database_url: str) -> str:
    run_sql(
        database_url,
        "TRUNCATE images, api_tokens, people, operations_state, albums, articles, album_images,"
        " upload_jobs, upload_job_entries, shared_store, pending_objects, schedule_runs, thumbnail_batches,"
        " procrastinate_jobs"
        " RESTART IDENTITY CASCADE",
    )
    return database_url


@pytest.fixture
def settings(clean_database: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=clean_database,
        images_dir=tmp_path / "images",
        log_dir=tmp_path / "logs",
        secret_key="test-secret-key",
        admin_token=ADMIN_TOKEN,
        public_base_url="",
        # Image work in threads: fast to start for each test. The isolated worker processes are
        # tested in test_workers.py, test_pipeline.py and by every live-server (stack, browser) test.
        worker_processes=0,
        upload_rate_limit=0,
        login_rate_limit=0,
    )


@pytest.fixture
def make_client(settings: Settings):
    """Build a client for the app with some settings changed; the lifespan runs (pool, clean-up).

    Piccolo tables are bound to one engine per process, as in production: building a new app
    closes the previous one. For a second browser on the same app, use `another_browser`.
    """
    clients: list[TestClient] = []

    def build(**changes: object) -> TestClient:
        from dataclasses import replace

        while clients:
            clients.pop().__exit__(None, None, None)
        client = TestClient(create_app(replace(settings, **changes)), base_url="http://testserver.local")
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


@contextmanager
def another_browser(client: TestClient) -> Iterator[TestClient]:
    """The same app seen by a different browser: no cookies of its own to start with."""
    saved = dict(client.cookies)
    client.cookies.clear()
    try:
        yield client
    finally:
        client.cookies.clear()
        for name, value in saved.items():
            client.cookies.set(name, value)


@pytest.fixture
def app_log(settings: Settings):
    def read() -> list[str]:
        path = settings.log_dir / "app.log"
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    return read


def png_bytes(width: int = 32, height: int = 24, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


HTML = {"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}
HTMX = {"Accept": "*/*", "HX-Request": "true", "HX-Current-URL": "http://testserver.local/upload"}


def upload(client: TestClient, content: bytes, name: str = "picture.png", headers: dict | None = None):
    return client.post("/upload", files={"file": (name, content, "application/octet-stream")}, headers=headers or {})


def stored_files(settings: Settings) -> list[str]:
    if not settings.images_dir.exists():
        return []
    return sorted(p.name for p in settings.images_dir.iterdir() if p.is_file())


@pytest.fixture(scope="session", autouse=True)
def _artifacts_dir() -> Iterator[None]:
    ARTIFACTS.mkdir(exist_ok=True)
    os.environ.setdefault("IMAGEHOST_TEST_ARTIFACTS", str(ARTIFACTS))
    yield
