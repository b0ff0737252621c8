"""`just bench`: catalogue paging at 1,000 and 1,000,000 rows, and upload speed against a bare write.

Prints figures and ratios; asserts nothing (speed is judged by people reading the numbers).
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT_ROOT / "src"), str(PROJECT_ROOT)]

from litestar.testing import TestClient  # noqa: E402
from PIL import Image as PILImage  # noqa: E402

from imagehost.app import create_app  # noqa: E402
from imagehost.devdb import migrate, start_embedded_postgres  # noqa: E402
from imagehost.settings import Settings  # noqa: E402
from tests.conftest import run_sql  # noqa: E402

FILL = """
INSERT INTO images (stored_name, original_name, size_bytes, file_format, sha256, uploaded_at, delete_key_hash)
SELECT md5(g::text) || '.png', 'bench-' || g || '.png', 30000, 'PNG', md5(g::text) || md5(g::text),
       now() - make_interval(secs => g), ''
FROM generate_series(1, $1::int) AS g
"""


def fill(database_url: str, rows: int) -> None:
    run_sql(database_url, "TRUNCATE images RESTART IDENTITY")
    run_sql(database_url, "ALTER TABLE images DISABLE TRIGGER images_count")
    run_sql(database_url, FILL, rows)
    run_sql(database_url, "ALTER TABLE images ENABLE TRIGGER images_count")
    run_sql(database_url, "UPDATE image_totals SET total = (SELECT count(*) FROM images) WHERE id = 1")
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
    for rows in (1_000, 1_000_000):
        started = time.perf_counter()
        fill(database_url, rows)
        print(f"  filled {rows:>9,} rows in {time.perf_counter() - started:.1f} s")
        settings = Settings(database_url=database_url, images_dir=workdir / "images", log_dir=workdir / "logs")
        with TestClient(create_app(settings)) as client:
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
    run_sql(database_url, "TRUNCATE images RESTART IDENTITY")


def small_png() -> bytes:
    buffer = io.BytesIO()
    PILImage.effect_noise((64, 64), 60).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def bench_upload(database_url: str, workdir: Path, count: int = 200) -> None:
    content = small_png()
    bare_dir = workdir / "bare"
    bare_dir.mkdir()

    def bare_write(i: int) -> None:
        path = bare_dir / f"{i}.png"
        with open(path, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())

    started = time.perf_counter()
    for i in range(count):
        bare_write(i)
    bare_rate = count / (time.perf_counter() - started)
    settings = Settings(database_url=database_url, images_dir=workdir / "images", log_dir=workdir / "logs")
    with TestClient(create_app(settings)) as client:
        started = time.perf_counter()
        for i in range(count):
            response = client.post("/upload", files={"file": (f"{i}.png", content)})
            assert response.status_code == 201, response.text
        upload_rate = count / (time.perf_counter() - started)
    print(f"Upload of a {len(content):,}-byte PNG, one at a time, {count} times:")
    print(f"  bare write + fsync: {bare_rate:8.1f} files/s")
    print(f"  full upload:        {upload_rate:8.1f} uploads/s (validate, decode, store, row)")
    print(f"  ratio upload/bare:  {upload_rate / bare_rate:.2f}")
    run_sql(database_url, "TRUNCATE images RESTART IDENTITY")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="imagehost-bench-") as temporary:
        workdir = Path(temporary)
        database_url = start_embedded_postgres(workdir / "postgres", database="images_bench")
        migrate(database_url, PROJECT_ROOT)
        bench_catalogue(database_url, workdir)
        bench_upload(database_url, workdir)


if __name__ == "__main__":
    main()
