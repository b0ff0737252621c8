"""Memory stays flat with size: a real uvicorn (the Dockerfile's command, image work in threads)
exports LINKS / 10 and then LINKS links (20,000; 100,000 with EXPORT_MEMORY_LINKS), and the
catalogue of all those images, to a client that reads
the answer as it comes; the server's RSS is sampled throughout. The bound is far above what is
expected (a few MB): it catches a sheet or a result set held whole in memory, not a slow machine.
The figures are printed (`-s`) for the record."""

from __future__ import annotations

import os
import threading
import time

import httpx
import psutil

from tests.exports.bulk import bulk_album
from tests.live import live_app

# EXPORT_MEMORY_LINKS=100000 for the figures in the README (slow to set up on a shared machine).
LINKS = int(os.environ.get("EXPORT_MEMORY_LINKS", "20000"))
LIMIT_MB = 150  # 100,000 rows held as Python objects, or a finished workbook in memory, go past it


def peak_growth_mb(process: psutil.Process, url: str, params: dict) -> tuple[float, int, float]:
    """(peak RSS growth in MB while the answer is read, bytes read, seconds)."""
    start = process.memory_info().rss
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    began, size = time.monotonic(), 0
    try:
        with httpx.stream("GET", url, params=params, headers={"Accept": "application/json"}, timeout=600) as answer:
            assert answer.status_code == 200, answer.read()
            for chunk in answer.iter_bytes():
                size += len(chunk)
    finally:
        done.set()
        sampler.join()
    return (peak[0] - start) / 2**20, size, time.monotonic() - began


def test_exports_of_100000_rows_stay_in_bounded_memory(settings, tmp_path):
    began = time.monotonic()
    bulk_album(settings.database_url, "small", articles=LINKS // 1000, per_article=100)
    bulk_album(settings.database_url, "large", articles=LINKS // 100, per_article=100)
    print(f"\nrows made in {time.monotonic() - began:.1f} s")
    with live_app(settings.database_url, tmp_path, WORKER_PROCESSES="0") as app:
        server = psutil.Process(app.process.pid)
        for path in ("/api/export-xlsx", "/api/export-csv"):
            peak_growth_mb(server, f"{app.url}{path}", {"album_name": "small"})  # warm up: imports, first file
            for album, links in (("small", f"{LINKS // 10:,}"), ("large", f"{LINKS:,}")):
                growth, size, seconds = peak_growth_mb(server, f"{app.url}{path}", {"album_name": album})
                print(f"\n{path} {links} links: peak RSS +{growth:.1f} MB, {size / 2**20:.1f} MB, {seconds:.1f} s")
                assert growth < LIMIT_MB
        for path in ("/export/images.csv", "/export/images.xlsx"):
            growth, size, seconds = peak_growth_mb(server, f"{app.url}{path}", {})
            print(
                f"\n{path} {LINKS * 11 // 10:,} rows: peak RSS +{growth:.1f} MB, {size / 2**20:.1f} MB, {seconds:.1f} s"
            )
            assert growth < LIMIT_MB
