"""STORAGE=s3 against the local folder, in one run (issue 20): uploads and direct links through the app.

Two live apps, one after the other, on the same database: one storing in its images folder, one in a
bucket of moto's S3 server (tests/s3server.py, behind its TCP front). Each takes the same uploads
(256x256 PNGs, 4 at a time) and then serves every direct link `/images/<name>` itself (no nginx),
8 at a time over keep-alive connections. The figures are the rates and the ratios s3 / local.

moto is a Python server on the same 2 cores as the app and the load, so the S3 side's rates are
moto's as much as the app's: the ratios are a floor for a real store, not its measure. Figures only,
no goals: nothing here asserts a speed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.bench_support import UploadRun, http_client, medium_png, upload_many
from tests.conftest import run_sql
from tests.live import live_app
from tests.s3server import s3_server_process

UPLOADS = 60
UPLOAD_CONCURRENCY = 4
SERVE_CONCURRENCY = 8
SERVE_PASSES = 5  # every direct link this many times: 60 GETs alone last a fraction of a second
THUMBNAIL_SIZES = "160,480,1280"

Row = tuple[str, str, str, bool | None]


@dataclass
class ServeRun:
    count: int
    elapsed: float
    failures: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0

    @property
    def rate(self) -> float:
        return (self.count - sum(self.failures.values())) / self.elapsed


@dataclass
class Backend:
    label: str
    upload: UploadRun
    serve: ServeRun


async def serve_all(base_url: str, paths: list[str], concurrency: int) -> ServeRun:
    """GET each path, `concurrency` in flight, on keep-alive connections; 200 with a body counts."""
    failures: dict[str, int] = {}
    total = 0
    remaining = iter(paths)

    async def getter(client: httpx.AsyncClient) -> None:
        nonlocal total
        for path in remaining:
            try:
                response = await client.get(path)
                outcome = "200" if response.status_code == 200 and response.content else str(response.status_code)
                total += len(response.content)
            except httpx.HTTPError as error:
                outcome = type(error).__name__
            if outcome != "200":
                failures[outcome] = failures.get(outcome, 0) + 1

    async with http_client(base_url) as client:
        await client.get(paths[0])  # a connection open and the store touched before the clock starts
        started = time.perf_counter()
        await asyncio.gather(*(getter(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return ServeRun(len(paths), elapsed, failures, total)


def measure(label: str, database_url: str, workdir: Path, content: bytes, **settings: str) -> Backend:
    workdir.mkdir(parents=True, exist_ok=True)
    with live_app(database_url, workdir, THUMBNAIL_SIZES=THUMBNAIL_SIZES, **settings) as app:
        try:
            warm = asyncio.run(upload_many(app.url, content, "warm.png", "image/png", UPLOAD_CONCURRENCY, 4))
            if warm.failures:
                raise RuntimeError(f"{label}: warm-up uploads failed: {warm.failures}")
            run_sql(database_url, "TRUNCATE images RESTART IDENTITY CASCADE")
            upload = asyncio.run(upload_many(app.url, content, "bench.png", "image/png", UPLOADS, UPLOAD_CONCURRENCY))
            names = [row["stored_name"] for row in run_sql(database_url, "SELECT stored_name FROM images ORDER BY id")]
            if not names:
                raise RuntimeError(f"{label}: no upload stored: {upload.failures}")
            paths = [f"/images/{name}" for name in names] * SERVE_PASSES
            serve = asyncio.run(serve_all(app.url, paths, SERVE_CONCURRENCY))
        finally:
            run_sql(database_url, "TRUNCATE images RESTART IDENTITY CASCADE")
    print(
        f"    {label:<34} uploads {upload.rate:7.1f}/s ({upload.latencies.describe()})"
        f"   serves {serve.rate:7.1f}/s ({serve.count} GETs, {serve.bytes_read:,} bytes)"
    )
    return Backend(label, upload, serve)


def bench_storage(database_url: str, workdir: Path) -> list[Row]:
    """Local folder, then STORAGE=s3 on moto: print the table and the ratios; return (figure, value, target, met)."""
    content = medium_png()
    print(
        f"\nSTORAGE=s3 against the local folder (issue 20), one app after the other, through the app (no nginx):"
        f" {UPLOADS} uploads of a 256x256 PNG ({len(content):,} bytes, thumbnails {THUMBNAIL_SIZES})"
        f" {UPLOAD_CONCURRENCY} at a time, then every direct link x{SERVE_PASSES}, {SERVE_CONCURRENCY} at a time"
    )
    local = measure("local folder", database_url, workdir / "storage-local", content)
    with s3_server_process(workdir / "storage-moto") as s3_server:
        s3 = measure("S3 (moto server)", database_url, workdir / "storage-s3", content, **s3_server.env("bench/"))

    print("\n  | storage | uploads/s | serves/s |")
    print("  | --- | --- | --- |")
    for backend in (local, s3):
        print(f"  | {backend.label} | {backend.upload.rate:.1f}/s | {backend.serve.rate:.1f}/s |")
    upload_ratio, serve_ratio = s3.upload.rate / local.upload.rate, s3.serve.rate / local.serve.rate
    print(f"\n  s3 / local: uploads {upload_ratio:.2f}x, serves {serve_ratio:.2f}x")
    print(
        "  (moto is a Python server on the same cores: it is the S3 side's bottleneck here,"
        " so these ratios are a floor for a real store)"
    )

    rows: list[Row] = []
    for backend in (local, s3):
        rows.append((f"storage, {backend.label}: uploads", f"{backend.upload.rate:.1f}/s", "-", None))
        rows.append((f"storage, {backend.label}: serves", f"{backend.serve.rate:.1f}/s", "-", None))
    rows.append(("storage, s3 / local: uploads (moto: a floor)", f"{upload_ratio:.2f}x", "-", None))
    rows.append(("storage, s3 / local: serves (moto: a floor)", f"{serve_ratio:.2f}x", "-", None))
    for backend in (local, s3):
        if backend.upload.failures:
            rows.append((f"storage, {backend.label}: failed uploads", str(backend.upload.failures), "none", False))
        if backend.serve.failures:
            rows.append((f"storage, {backend.label}: failed GETs", str(backend.serve.failures), "none", False))
    return rows
