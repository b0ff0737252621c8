"""ImageHost's uploads side by side with the reference servers, in one run (issue 18's table and goals).

Each server is started fresh, one after the other, with its own folder, loaded by this process
(the load generator on the same cores) with the same files at the same concurrency, and stopped
by its PID. The rates, ImageHost's ratios against the naive host (with issue 18's goals) and the
peak RSS of each server's process tree under the JPEG load come back as summary rows.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench_reference.servers import bare_asgi, naive_flask
from tests.bench_support import MB, CpuMeter, MemoryPeaks, RssSampler, UploadRun, upload_many
from tests.conftest import run_sql
from tests.live import live_app

PEAK_RSS_GOAL_MB = 300
IMAGEHOST = "ImageHost (rate limit off; 1 app process, 2 image workers: the default on 2 cores)"
IMAGEHOST_TWO = "ImageHost, WEB_CONCURRENCY=2 (2 app processes, 1 image worker each)"
NAIVE = "naive Flask + gunicorn (2 workers): extension, save, INSERT"
BARE = "bare ASGI (uvicorn, 1 process): writes the bytes"


@dataclass(frozen=True)
class Load:
    label: str
    content: bytes
    filename: str
    content_type: str
    count: int
    concurrency: int
    goal: float | None = None  # ImageHost's rate / the naive host's, at least
    memory: bool = False  # sample the server's RSS during this load


def loads(small_png: bytes, medium_png: bytes, photo_jpeg: bytes) -> list[Load]:
    # Counts: a run of the fastest server lasts a second or more (shorter ones are mostly noise),
    # and the whole comparison about a minute and a half on 2 cores.
    png, jpeg = ("upload.png", "image/png"), ("photo.jpg", "image/jpeg")
    return [
        Load("64x64 PNG, 1 at a time", small_png, *png, 300, 1),
        Load("64x64 PNG, 8 at a time", small_png, *png, 600, 8),
        Load("256x256 PNG, 1 at a time", medium_png, *png, 300, 1, goal=0.8),
        Load("256x256 PNG, 8 at a time", medium_png, *png, 600, 8, goal=1.0),
        Load("12-MP JPEG, 4 at a time", photo_jpeg, *jpeg, 40, 4, goal=0.5, memory=True),
    ]


@dataclass
class Figures:
    """One server's figures: uploads/s by load label, the peak RSS of its tree under the memory load."""

    server: str
    runs: dict[str, UploadRun] = field(default_factory=dict)
    peak: MemoryPeaks = field(default_factory=MemoryPeaks)
    noise: float = 0.0  # the largest share of the cores other processes took during one of its runs

    def rate(self, label: str) -> float:
        return self.runs[label].rate


def clear(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            path.unlink()


def measure(
    server: str, url: str, pid: int, postgres_pid: int, all_loads: list[Load], reset: Callable[[], None]
) -> Figures:
    figures = Figures(server)
    for load in all_loads:

        def go(count: int, load: Load = load) -> UploadRun:
            return asyncio.run(
                upload_many(url, load.content, load.filename, load.content_type, count, load.concurrency)
            )

        warm = go(load.concurrency)  # connections open, workers warm, before the clock starts
        if warm.failures:
            raise RuntimeError(f"{server}: warm-up uploads failed: {warm.failures}")
        reset()
        with ExitStack() as stack:
            if load.memory:
                figures.peak = stack.enter_context(RssSampler(pid))
            cpu = stack.enter_context(CpuMeter(pid, postgres_pid))
            run = go(load.count)
        reset()
        figures.runs[load.label] = run
        figures.noise = max(figures.noise, cpu.others_share)
        failed = f"   FAILED: {run.failures}" if run.failures else ""
        print(f"    {load.label:<26} {run.rate:8.1f}/s   {run.latencies.describe()}{failed}")
    memory = next(load for load in all_loads if load.memory)
    print(
        f"    peak RSS, {memory.label}: {figures.peak.total / MB:.0f} MB (process tree, {figures.peak.samples} samples)"
    )
    print(f"    other processes took up to {figures.noise:.0%} of the cores during one of these runs")
    return figures


def rate_text(rate: float) -> str:
    return f"{rate:,.0f}/s" if rate >= 100 else f"{rate:.1f}/s"


def print_table(all_loads: list[Load], servers: list[Figures]) -> None:
    memory = next(load for load in all_loads if load.memory)
    header = ["server", *(load.label for load in all_loads), f"peak RSS, {memory.label.split(',')[0]} load"]
    print("\n  | " + " | ".join(header) + " |")
    print("  | " + " | ".join("---" for _ in header) + " |")
    for figures in servers:
        cells = [rate_text(figures.rate(load.label)) for load in all_loads]
        print(f"  | {figures.server} | " + " | ".join(cells) + f" | {figures.peak.total / MB:.0f} MB |")


def bench_side_by_side(
    database_url: str, workdir: Path, postgres_pid: int, small_png: bytes, medium_png: bytes, photo_jpeg: bytes
) -> list[tuple[str, str, str, bool | None]]:
    """Measure the three servers; print their table and ImageHost's ratios; return (figure, value, target, met)."""
    all_loads = loads(small_png, medium_png, photo_jpeg)
    print(
        f"\nSide by side with reference servers (issue 18), each started fresh, the load from this process:"
        f" 64x64 PNG {len(small_png):,} bytes, 256x256 PNG {len(medium_png):,} bytes,"
        f" 12-MP JPEG {len(photo_jpeg):,} bytes"
    )
    servers: list[Figures] = []

    print(f"  {BARE}:")
    with bare_asgi(workdir / "reference-bare") as bare:
        servers.append(
            measure(BARE, bare.url, bare.process.pid, postgres_pid, all_loads, lambda: clear(bare.upload_dir))
        )
    shutil.rmtree(workdir / "reference-bare")

    print(f"  {NAIVE}:")
    try:
        with naive_flask(workdir / "reference-naive", database_url) as naive:

            def reset_naive() -> None:
                run_sql(database_url, "TRUNCATE naive_uploads")
                clear(naive.upload_dir)

            servers.append(measure(NAIVE, naive.url, naive.process.pid, postgres_pid, all_loads, reset_naive))
    finally:
        run_sql(database_url, "DROP TABLE IF EXISTS naive_uploads")
    shutil.rmtree(workdir / "reference-naive")

    print(f"  {IMAGEHOST}:")
    (workdir / "reference-imagehost").mkdir()
    with live_app(database_url, workdir / "reference-imagehost") as app:

        def reset_imagehost() -> None:
            run_sql(database_url, "TRUNCATE images RESTART IDENTITY CASCADE")

        servers.append(measure(IMAGEHOST, app.url, app.process.pid, postgres_pid, all_loads, reset_imagehost))
    shutil.rmtree(workdir / "reference-imagehost")

    # The same with two app processes sharing the cores: figures only, the goals are for the default.
    print(f"  {IMAGEHOST_TWO}:")
    (workdir / "reference-imagehost-2").mkdir()
    with live_app(database_url, workdir / "reference-imagehost-2", WEB_CONCURRENCY="2", WORKER_PROCESSES="1") as app:
        servers.append(measure(IMAGEHOST_TWO, app.url, app.process.pid, postgres_pid, all_loads, reset_imagehost))
    shutil.rmtree(workdir / "reference-imagehost-2")

    print_table(all_loads, servers)
    bare_figures, naive_figures, imagehost_figures, _two = servers
    return print_ratios(all_loads, bare_figures, naive_figures, imagehost_figures)


def print_ratios(
    all_loads: list[Load], bare: Figures, naive: Figures, imagehost: Figures
) -> list[tuple[str, str, str, bool | None]]:
    rows: list[tuple[str, str, str, bool | None]] = []
    print("\n  ImageHost / naive host (and / bare ASGI), goals of issue 18:")
    for load in all_loads:
        ours, theirs = imagehost.rate(load.label), naive.rate(load.label)
        ratio, bare_ratio = ours / theirs, ours / bare.rate(load.label)
        figure = f"ImageHost / naive host, {load.label}"
        value = f"{ratio:.2f}x ({rate_text(ours)} / {rate_text(theirs)})"
        if load.goal is None:
            verdict, rows_entry = "(no goal)", (figure, value, "-", None)
        else:
            met = ratio >= load.goal
            verdict = f"goal >= {load.goal:.1f}x  {'met' if met else 'NOT met'}"
            rows_entry = (figure, value, f">= {load.goal:.1f}x", met)
        print(f"    {load.label:<26} {ratio:5.2f}x  (/ bare {bare_ratio:5.2f}x)   {verdict}")
        rows.append(rows_entry)
    peak_mb = imagehost.peak.total / MB
    met = peak_mb <= PEAK_RSS_GOAL_MB
    memory = next(load for load in all_loads if load.memory)
    print(
        f"    ImageHost peak RSS, {memory.label}: {peak_mb:.0f} MB (naive {naive.peak.total / MB:.0f} MB,"
        f" bare {bare.peak.total / MB:.0f} MB)   goal <= {PEAK_RSS_GOAL_MB} MB  {'met' if met else 'NOT met'}"
    )
    rows.append((f"ImageHost peak RSS, {memory.label} (tree)", f"{peak_mb:.0f} MB", f"<= {PEAK_RSS_GOAL_MB} MB", met))
    for figures in (bare, naive, imagehost):
        failures = {label: run.failures for label, run in figures.runs.items() if run.failures}
        if failures:
            rows.append((f"side by side, {figures.server}: failed uploads", str(failures), "none", False))
    return rows
