"""The measuring tools of `just bench`: its inputs, a load driver, a bare-write baseline, an RSS sampler.

Nothing here asserts a speed: each tool returns numbers for bench.py to print.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import random
import statistics
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path

import httpx
import psutil
from PIL import Image, ImageChops

MB = 1_000_000  # decimal, as in the targets (300 MB)
CORES = psutil.cpu_count() or 1
REQUEST_TIMEOUT_SECONDS = 300.0

# --- inputs ---------------------------------------------------------------------------------------


def small_png() -> bytes:
    """A 64x64 noise PNG (about 12 KB): the cost of an upload when the image itself costs little."""
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 60).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def medium_png() -> bytes:
    """A 256x256 PNG of about 100 KB (noise in 16 levels a channel): issue 18's small upload."""
    levels = bytes(value & 0xF0 for value in range(256))
    pixels = random.Random(18).randbytes(256 * 256 * 3).translate(levels)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (256, 256), pixels).save(buffer, "PNG")
    return buffer.getvalue()


def photo_jpeg(size: tuple[int, int] = (4000, 3000)) -> bytes:
    """A 12-megapixel camera-like JPEG: smooth gradients, a little sensor noise, quality 90, an EXIF block."""
    red = Image.linear_gradient("L").resize(size)
    green = Image.linear_gradient("L").rotate(90).resize(size)
    blue = Image.radial_gradient("L").resize(size)
    noise = Image.effect_noise(size, 5)  # mean 128: added with offset -128 it is zero-mean grain
    photo = Image.merge("RGB", [ImageChops.add(channel, noise, 1.0, -128) for channel in (red, green, blue)])
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "BenchCam", "BC-12", 1  # make, model, orientation
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def distinct_copies(jpeg: bytes, count: int, stem: str) -> list[tuple[str, bytes]]:
    """`count` files of the same picture, each with its own bytes (a JPEG comment after SOI), so that
    none is a duplicate of another: the same decode, strip and thumbnail work for each."""
    assert jpeg[:2] == b"\xff\xd8"
    copies = []
    for number in range(1, count + 1):
        comment = f"bench copy {number}".encode()
        segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
        copies.append((f"{stem}-{number:03d}.jpg", jpeg[:2] + segment + jpeg[2:]))
    return copies


def zip_of(files: list[tuple[str, bytes]], per_folder: int) -> bytes:
    """A shop's archive: one folder per article (SKU-001, SKU-002, ...), `per_folder` photos each."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (name, content) in enumerate(files):
            archive.writestr(f"SKU-{index // per_folder + 1:03d}/{name}", content)
    return buffer.getvalue()


def noise_png(target_bytes: int) -> bytes:
    """An incompressible RGB PNG of about `target_bytes` (random pixels do not compress)."""
    side = int((target_bytes / 3) ** 0.5)
    pixels = random.Random(5).randbytes(side * side * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(buffer, "PNG")
    return buffer.getvalue()


# --- statistics -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Latencies:
    """Milliseconds."""

    samples: tuple[float, ...]

    def percentile(self, wanted: int) -> float:
        if len(self.samples) < 2:
            return self.samples[0] if self.samples else float("nan")
        return statistics.quantiles(self.samples, n=100, method="inclusive")[wanted - 1]

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p95(self) -> float:
        return self.percentile(95)

    @property
    def max(self) -> float:
        return max(self.samples, default=float("nan"))

    def describe(self) -> str:
        return f"p50 {self.p50:7.1f} ms  p95 {self.p95:7.1f} ms  max {self.max:7.1f} ms  ({len(self.samples)} requests)"


# --- the bare write -------------------------------------------------------------------------------


def bare_write_rate(folder: Path, content: bytes, count: int, concurrency: int) -> float:
    """Files per second for `count` write + fsync of `content`, `concurrency` threads at a time.

    The same durability the app gives an original (its data is on disk before the answer), with
    none of the rest: no parsing, no database, no HTTP.
    """
    folder.mkdir(parents=True, exist_ok=True)

    def write(index: int) -> None:
        descriptor = os.open(folder / f"{index}.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    with ThreadPoolExecutor(max_workers=concurrency) as threads:
        started = time.perf_counter()
        list(threads.map(write, range(count)))
        elapsed = time.perf_counter() - started
    for path in folder.iterdir():
        path.unlink()
    return count / elapsed


# --- driving the live app -------------------------------------------------------------------------


def http_client(base_url: str) -> httpx.AsyncClient:
    """A client like curl's: keeps no cookies, so each upload is a fresh visitor's."""
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return httpx.AsyncClient(
        base_url=base_url,
        cookies=no_cookies,
        timeout=REQUEST_TIMEOUT_SECONDS,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )


@dataclass
class UploadRun:
    count: int
    concurrency: int
    elapsed: float
    latencies: Latencies
    failures: dict[str, int] = field(default_factory=dict)  # status or error -> how many

    @property
    def succeeded(self) -> int:
        return self.count - sum(self.failures.values())

    @property
    def rate(self) -> float:
        return self.succeeded / self.elapsed


async def upload_many(
    base_url: str, content: bytes, filename: str, content_type: str, count: int, concurrency: int
) -> UploadRun:
    """`count` POST /upload, `concurrency` in flight at any time; the latency of each, the rate of all."""
    files = [(f"{index}-{filename}", content) for index in range(count)]
    return await upload_files(base_url, files, content_type, concurrency)


async def upload_files(base_url: str, files: list[tuple[str, bytes]], content_type: str, concurrency: int) -> UploadRun:
    """One POST /upload per (name, content), `concurrency` in flight at any time."""
    latencies: list[float] = []
    failures: dict[str, int] = {}
    remaining = iter(files)
    count = len(files)

    async def uploader(client: httpx.AsyncClient) -> None:
        for name, content in remaining:  # the iterator is shared: each file is taken by one uploader
            started = time.perf_counter()
            try:
                response = await client.post(
                    "/upload",
                    files={"file": (name, content, content_type)},
                    headers={"Accept": "application/json"},
                )
                outcome = str(response.status_code)
            except httpx.HTTPError as error:
                outcome = type(error).__name__
            if outcome == "201":
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                failures[outcome] = failures.get(outcome, 0) + 1

    async with http_client(base_url) as client:
        started = time.perf_counter()
        await asyncio.gather(*(uploader(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return UploadRun(count, concurrency, elapsed, Latencies(tuple(latencies)), failures)


@dataclass
class ZipRun:
    """One ZIP through POST /api/upload, to the end of its job."""

    elapsed: float  # seconds from the first byte sent to the job's final report
    status: int  # the POST's status (202 when the job outlived ZIP_WAIT_SECONDS)
    state: str  # the job's: done or failed (or the POST's error)
    stored: int = 0
    refused: int = 0
    skipped: int = 0


async def upload_zip(base_url: str, raw: bytes, archive_name: str, poll_every: float = 0.25) -> ZipRun:
    """POST /api/upload with the archive; when it answers 202, follow job_url until the job ends."""
    async with http_client(base_url) as client:
        started = time.perf_counter()
        response = await client.post(
            "/api/upload",
            files={"zipfile": (archive_name, raw, "application/zip")},
            headers={"Accept": "application/json"},
        )
        status, body = response.status_code, response.json()
        if status == 202:
            job_url = body["job_url"]
            while body.get("state") not in ("done", "failed"):
                await asyncio.sleep(poll_every)
                body = (await client.get(job_url, headers={"Accept": "application/json"})).json()
        elapsed = time.perf_counter() - started
    state = body.get("state", "done" if status in (200, 201) else f"error {status}")
    return ZipRun(elapsed, status, state, body.get("stored", 0), body.get("refused", 0), body.get("skipped", 0))


async def poll_home(base_url: str, stop: asyncio.Event, interval: float = 0.05) -> Latencies:
    """GET / every `interval` seconds (at once when the previous answer was late) until `stop` is set."""
    samples: list[float] = []
    async with http_client(base_url) as client:
        next_at = time.perf_counter()
        while not stop.is_set():
            started = time.perf_counter()
            response = await client.get("/", headers={"Accept": "text/html"})
            if response.status_code == 200:
                samples.append((time.perf_counter() - started) * 1000)
            # After a late answer the next request goes at once, with no burst to catch up.
            next_at = max(next_at + interval, time.perf_counter())
            await asyncio.sleep(next_at - time.perf_counter())
    return Latencies(tuple(samples))


async def home_latency_for(base_url: str, seconds: float) -> Latencies:
    stop = asyncio.Event()
    polling = asyncio.create_task(poll_home(base_url, stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await polling


# --- memory ---------------------------------------------------------------------------------------


@dataclass
class MemoryPeaks:
    """Resident set sizes in bytes: the app's main process, and it together with every child."""

    main: int = 0
    total: int = 0
    samples: int = 0


def resident_bytes(process: psutil.Process) -> tuple[int, int]:
    """(main process RSS, main + children RSS). Children: the image workers and multiprocessing's tracker."""
    main = process.memory_info().rss
    total = main
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):  # a worker replaced between the listing and the read
            total += child.memory_info().rss
    return main, total


class RssSampler:
    """Samples the RSS of a process tree every `interval` seconds in a thread, keeping the peaks.

    RSS summed over processes counts shared pages (the interpreter, Pillow) once per process,
    so the total is an upper bound of what the tree really holds.
    """

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peaks = MemoryPeaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def __enter__(self) -> MemoryPeaks:
        self._thread.start()
        return self.peaks

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            main, total = resident_bytes(self.process)
            self.peaks.main = max(self.peaks.main, main)
            self.peaks.total = max(self.peaks.total, total)
            self.peaks.samples += 1
            if self._stop.wait(self.interval):
                return


# --- where the CPU goes ---------------------------------------------------------------------------


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def _cpu_by_pid(root: psutil.Process) -> dict[int, float]:
    """CPU seconds (user + system) of a process and each of its descendants, by pid."""
    seconds: dict[int, float] = {}
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            seconds[process.pid] = times.user + times.system
    return seconds


@dataclass(frozen=True)
class CpuShares:
    """CPU seconds spent during a run by each party on this machine."""

    app_main: float
    workers: float
    postgres: float
    client: float
    machine: float  # every process on the machine, these included
    wall: float

    @property
    def others_share(self) -> float:
        """How much of the machine's CPU other processes took during the run: the noise in its figures."""
        ours = self.app_main + self.workers + self.postgres + self.client
        return max(0.0, self.machine - ours) / (self.wall * CORES)


class CpuMeter:
    """CPU used between enter and exit by the app's main process, its workers, PostgreSQL and this process.

    A process that ends during the run (a replaced worker, a closed connection's backend) is left out.
    """

    def __init__(self, app_pid: int, postgres_pid: int) -> None:
        self.app = psutil.Process(app_pid)
        self.postgres = psutil.Process(postgres_pid)
        self.client = psutil.Process()
        self.shares: CpuShares | None = None

    def _snapshot(self) -> tuple[dict[int, float], dict[int, float], float, float, float]:
        times = self.client.cpu_times()
        machine = psutil.cpu_times()
        busy = machine.user + machine.nice + machine.system + machine.irq + machine.softirq + machine.steal
        own = _cpu_by_pid(self.app), _cpu_by_pid(self.postgres), times.user + times.system
        return *own, busy, time.perf_counter()

    def __enter__(self) -> CpuMeter:
        self._start = self._snapshot()
        return self

    def __exit__(self, *exc_info: object) -> None:
        app_end, postgres_end, client_end, machine_end, wall_end = self._snapshot()
        app_start, postgres_start, client_start, machine_start, wall_start = self._start

        def spent(end: dict[int, float], start: dict[int, float], pids: set[int]) -> float:
            return sum(end[pid] - start.get(pid, 0.0) for pid in pids if pid in end)

        main = self.app.pid
        self.shares = CpuShares(
            app_main=spent(app_end, app_start, {main}),
            workers=spent(app_end, app_start, set(app_end) - {main}),
            postgres=spent(postgres_end, postgres_start, set(postgres_end)),
            client=client_end - client_start,
            machine=machine_end - machine_start,
            wall=wall_end - wall_start,
        )

    def describe(self, count: int) -> str:
        assert self.shares is not None
        per = {name: seconds * 1000 / count for name, seconds in vars(self.shares).items()}
        return (
            f"app main {per['app_main']:.1f} ms, image workers {per['workers']:.1f} ms, "
            f"PostgreSQL {per['postgres']:.1f} ms, bench client {per['client']:.1f} ms"
        )

    @property
    def others_share(self) -> float:
        assert self.shares is not None, "read the meter after its block"
        return self.shares.others_share

    def describe_noise(self) -> str:
        return f"other processes took {self.others_share:.0%} of the {CORES} cores during this run"


# --- albums at scale ------------------------------------------------------------------------------

MEASURED_ALBUM = "bench"  # sorts before the filler albums ("shop-00001", ...): on the grid's first page
MEASURED_ARTICLES = 48  # two pages of article cards
MEASURED_PHOTOS = 20  # per article: one gallery page
MEASURED_ARTICLE = "SKU-0001"


@dataclass(frozen=True)
class AlbumLayout:
    """How `images` rows (already in the images table, ids 1..images, newest first) are placed.

    The measured album is the same at every size (48 articles x 20 photos, the oldest images: the
    far end of the catalogue's order); the rest fill `filler_albums` x `filler_articles` articles.
    So a page shows the same number of items at every size and only the tables grow.
    """

    images: int
    filler_albums: int
    filler_articles: int  # per filler album

    @property
    def measured_images(self) -> int:
        return MEASURED_ARTICLES * MEASURED_PHOTOS

    @property
    def filler_images(self) -> int:
        return self.images - self.measured_images

    @property
    def per_filler_article(self) -> int:
        return -(-self.filler_images // (self.filler_albums * self.filler_articles))


RECOUNT_ALBUMS = [
    "UPDATE albums al SET image_count = c.images FROM"
    " (SELECT album, count(*) AS images FROM album_images GROUP BY album) c WHERE c.album = al.id",
    "UPDATE albums al SET article_count = c.articles FROM"
    " (SELECT album, count(*) AS articles FROM articles GROUP BY album) c WHERE c.album = al.id",
    "UPDATE articles ar SET image_count = c.images FROM"
    " (SELECT article, count(*) AS images FROM album_images GROUP BY article) c WHERE c.article = ar.id",
]
FILL_ALBUMS = (
    "INSERT INTO albums (id, name) SELECT 1, $1::text UNION ALL"
    " SELECT 1 + a, 'shop-' || lpad(a::text, 5, '0') FROM generate_series(1, $2::int) a"
)
FILL_ARTICLES = (
    "INSERT INTO articles (id, album, code) SELECT r, 1, 'SKU-' || lpad(r::text, 4, '0')"
    " FROM generate_series(1, $1::int) r UNION ALL"
    " SELECT $1 + (a - 1) * $3 + r, 1 + a, 'SKU-' || lpad(r::text, 4, '0')"
    " FROM generate_series(1, $2::int) a, generate_series(1, $3::int) r"
)
# Filler image g sits in filler article (g - 1) / per, in order: an album's images are uploaded
# together (contiguous in time), as a ZIP would store them.
FILL_FILLER_PLACES = (
    "INSERT INTO album_images (image, album, article, position, source_sha256)"
    " SELECT id, 2 + ((id - 1) / $2) / $3, $4 + 1 + (id - 1) / $2, (id - 1) % $2, md5(id::text)"
    " FROM images WHERE id <= $1"
)
FILL_MEASURED_PLACES = (
    "INSERT INTO album_images (image, album, article, position, source_sha256)"
    " SELECT id, 1, 1 + (id - $1 - 1) / $2, (id - $1 - 1) % $2, md5(id::text) FROM images WHERE id > $1"
)


def fill_albums(database_url: str, layout: AlbumLayout) -> None:
    """Albums, articles and album_images over the images rows, in a few generate_series statements,
    with triggers and foreign-key checks off (session_replication_role) and the counts rebuilt
    after, as a bulk import would do."""
    import asyncpg

    async def go() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute("TRUNCATE albums, articles, album_images RESTART IDENTITY")
            async with connection.transaction():
                await connection.execute("SET LOCAL session_replication_role = replica")
                await connection.execute(FILL_ALBUMS, MEASURED_ALBUM, layout.filler_albums)
                await connection.execute(FILL_ARTICLES, MEASURED_ARTICLES, layout.filler_albums, layout.filler_articles)
                await connection.execute(
                    FILL_FILLER_PLACES,
                    layout.filler_images,
                    layout.per_filler_article,
                    layout.filler_articles,
                    MEASURED_ARTICLES,
                )
                await connection.execute(FILL_MEASURED_PLACES, layout.filler_images, MEASURED_PHOTOS)
            for table in ("albums", "articles"):
                await connection.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
            for statement in RECOUNT_ALBUMS:
                await connection.execute(statement)
            await connection.execute("VACUUM ANALYZE albums, articles, album_images")
            await connection.execute("CHECKPOINT")  # the fill's writes go to disk now, not during the timing
        finally:
            await connection.close()

    asyncio.run(go())


def interleaved_medians_ms(actions: dict[str, list], repeat: int = 40) -> dict[str, list[float]]:
    """The median time of each action (an HTTP request answering 200), by name, taken in rounds:
    every action once per round, after 5 warm-up rounds, so that noise from other processes (or
    a database still settling after its fill) falls on all of them alike."""
    samples = {name: [[] for _ in group] for name, group in actions.items()}
    for round_number in range(5 + repeat):
        for name, group in actions.items():
            for action, times in zip(group, samples[name], strict=True):
                started = time.perf_counter()
                response = action()
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200, response.text[:500]
                if round_number >= 5:
                    times.append(elapsed)
    return {name: [statistics.median(times) for times in group] for name, group in samples.items()}
