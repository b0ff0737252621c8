"""`just bench`'s export figures: time and peak RSS of a live app exporting a 100,000-image catalogue
as CSV and XLSX and a 1 GB album (1,024 files of 1 MiB) as a ZIP, each against a reference measured in
the same run (the same rows read with one SELECT and written by Python's csv module to nowhere, or
by XlsxWriter straight to a file; a plain zipfile of the same files). Returns the figures for
bench.py's summary; asserts nothing."""

from __future__ import annotations

import csv
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import xlsxwriter

from tests.bench_support import RssSampler
from tests.conftest import run_sql
from tests.exports.bulk import bulk_album
from tests.live import live_app

CATALOGUE_ROWS = 100_000
# 1,024 files of 1 MiB: the 1 GB album ZIP of issue 16 (memory must stay flat whatever its size).
ZIP_IMAGES, ZIP_FILE_BYTES = 1024, 1024 * 1024
MB = 1_000_000
CATALOGUE_SQL = (
    "SELECT al.name AS album, ar.code AS article, i.original_name, i.stored_name, i.size_bytes, i.width,"
    " i.height, i.file_format, i.uploaded_at FROM images i LEFT JOIN album_images ai ON ai.image = i.id"
    " LEFT JOIN albums al ON al.id = ai.album LEFT JOIN articles ar ON ar.id = ai.article ORDER BY i.id"
)


class Sink:
    """A file that keeps nothing (and cannot seek, like a socket): what a reference writes to."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes | str) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def downloaded(url: str, pid: int) -> tuple[float, float, int]:
    """(seconds, peak RSS growth of the server in MB, bytes) of one export read as it comes."""
    server = psutil.Process(pid)
    before = server.memory_info().rss
    began, size = time.perf_counter(), 0
    with RssSampler(pid) as peaks, httpx.stream("GET", url, headers={"Accept": "*/*"}, timeout=600) as answer:
        if answer.status_code != 200:
            raise RuntimeError(f"{url}: {answer.status_code} {answer.read()[:200]!r}")
        for chunk in answer.iter_bytes():
            size += len(chunk)
    return time.perf_counter() - began, (peaks.main - before) / MB, size


def measured_here(work: Callable[[], int]) -> tuple[float, float, int]:
    """(seconds, peak RSS growth of this process in MB, bytes written) of a reference."""
    before = psutil.Process().memory_info().rss
    began = time.perf_counter()
    with RssSampler(os.getpid()) as peaks:
        size = work()
    return time.perf_counter() - began, (peaks.main - before) / MB, size


def reference_cells(row, site: str) -> tuple[list[str], list[str], list[int]]:
    """The app's columns for one row: texts, links (direct, page, three thumbnails), numbers."""
    url = f"{site}/images/{row['stored_name']}"
    texts = [row["album"] or "", row["article"] or "", row["original_name"], row["stored_name"]]
    numbers = [row["size_bytes"], row["width"] or 0, row["height"] or 0]
    return texts, [url] * 5, numbers


def reference_csv(database_url: str, site: str) -> int:
    sink = Sink()
    writer = csv.writer(sink, lineterminator="\r\n")
    for row in run_sql(database_url, CATALOGUE_SQL):
        texts, links, numbers = reference_cells(row, site)
        writer.writerow([*texts, *links, *numbers, row["file_format"], row["uploaded_at"].isoformat()])
    return sink.size


def reference_xlsx(database_url: str, site: str, folder: Path) -> int:
    path = folder / "reference.xlsx"
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True, "tmpdir": str(folder)})
    sheet, hyperlinks = book.add_worksheet(), 0
    for number, row in enumerate(run_sql(database_url, CATALOGUE_SQL)):
        texts, links, numbers = reference_cells(row, site)
        for column, value in enumerate(texts):
            sheet.write_string(number, column, value)
        for column, url in enumerate(links, len(texts)):
            if hyperlinks < 65_530:
                hyperlinks += 1
                sheet.write_url(number, column, url, string=url)
            else:
                sheet.write_string(number, column, url)
        for column, value in enumerate(numbers, len(texts) + len(links)):
            sheet.write_number(number, column, value)
        sheet.write_string(number, 12, row["file_format"])
        sheet.write_string(number, 13, row["uploaded_at"].isoformat())
    book.close()
    size = path.stat().st_size
    path.unlink()
    return size


def reference_zip(paths: list[Path]) -> int:
    sink = Sink()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:  # type: ignore[arg-type]
        for number, path in enumerate(paths):
            archive.write(path, f"SKU{number // 100 + 1}/{path.name}")
    return sink.size


def bench_exports(database_url: str, workdir: Path) -> list[tuple[str, str]]:
    for table in ("images", "albums"):
        run_sql(database_url, f"TRUNCATE {table} RESTART IDENTITY CASCADE")
    began = time.perf_counter()
    bulk_album(database_url, "bench-catalogue", articles=CATALOGUE_ROWS // 100, per_article=100, triggers=False)
    run_sql(database_url, "VACUUM ANALYZE images")
    print("\nExports through a live uvicorn (peak RSS growth of the server while a client reads the answer):")
    print(f"  made {CATALOGUE_ROWS:,} catalogue rows in {time.perf_counter() - began:.1f} s")
    figures: list[tuple[str, str]] = []
    folder = workdir / "export-bench"
    folder.mkdir()
    with live_app(database_url, folder, WORKER_PROCESSES="0") as app:
        downloaded(f"{app.url}/export/images.csv?format=gif", app.process.pid)  # warm up: imports, the pool
        downloaded(f"{app.url}/export/images.xlsx?format=gif", app.process.pid)
        references = {
            "csv": ("csv module to nowhere", lambda: reference_csv(database_url, app.url)),
            "xlsx": (
                "XlsxWriter to a file",
                lambda: reference_xlsx(database_url, app.url, Path(tempfile.mkdtemp(dir=folder))),
            ),
        }
        for kind, (reference_name, reference) in references.items():
            seconds, growth, size = downloaded(f"{app.url}/export/images.{kind}", app.process.pid)
            base_seconds, base_growth, _ = measured_here(reference)
            print(
                f"  catalogue {kind.upper():<4} {CATALOGUE_ROWS:,} rows  {seconds:6.1f} s  peak RSS +{growth:6.1f} MB"
                f"  {size / MB:6.1f} MB   reference ({reference_name}, same rows, one SELECT): {base_seconds:5.1f} s,"
                f" +{base_growth:.1f} MB  ratio {seconds / base_seconds:.1f}x"
            )
            figures.append(
                (
                    f"export catalogue {kind.upper()}, {CATALOGUE_ROWS:,} rows",
                    f"{seconds:.1f} s, +{growth:.0f} MB RSS ({seconds / base_seconds:.1f}x {reference_name})",
                )
            )

        run_sql(database_url, "TRUNCATE images RESTART IDENTITY CASCADE")
        bulk_album(database_url, "bench-zip", articles=ZIP_IMAGES // 100, per_article=100, triggers=False)
        paths = []
        for row in run_sql(database_url, "SELECT stored_name FROM images ORDER BY id"):
            path = app.images_dir / row["stored_name"]
            path.write_bytes(os.urandom(ZIP_FILE_BYTES))
            paths.append(path)
        seconds, growth, size = downloaded(f"{app.url}/download/album/bench-zip", app.process.pid)
        base_seconds, base_growth, _ = measured_here(lambda: reference_zip(paths))
        print(
            f"  album ZIP {ZIP_IMAGES} images  {seconds:6.1f} s  peak RSS +{growth:6.1f} MB  {size / MB:6.1f} MB"
            f"   reference (zipfile, stored, of the same files): {base_seconds:5.1f} s, +{base_growth:.1f} MB"
            f"  ratio {seconds / base_seconds:.1f}x"
        )
        figures.append(
            (
                f"export album ZIP, {ZIP_IMAGES} images ({size / MB:.0f} MB)",
                f"{seconds:.1f} s, +{growth:.0f} MB RSS ({seconds / base_seconds:.1f}x zipfile)",
            )
        )
    for table in ("images", "albums"):
        run_sql(database_url, f"TRUNCATE {table} RESTART IDENTITY CASCADE")
    return figures
