"""Direct links through the project's nginx against a bare nginx serving the same folder (issue 18).

The project's nginx is the one tests/test_stack.py runs: nginx.conf rendered as the nginx image
renders it, in front of a live app, with images uploaded through it. A bare nginx (the same binary
and the same main config: worker count, sendfile, an access log line per request written to a file)
serves the same images folder with nothing but `root`. Both are loaded by the same client, one after
the other, at the same concurrency; the figures are requests per second and the project's share of
the bare one's, with issue 18's goal (at least 0.95x). Nothing here asserts a speed.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from imagehost.images.controllers import IMAGE_SECURITY_HEADERS
from tests.bench_support import medium_png, photo_jpeg
from tests.conftest import run_sql
from tests.live import free_port, live_app
from tests.test_stack import Stack, main_config, nginx_process, running_nginx

GOAL = 0.95  # the project's nginx / the bare one, at least
CONNECTIONS = 16  # keep-alive connections, for both servers
# 5 s of load on each server, in rounds of 1 s that alternate between the two (and which goes first),
# so that what the machine's other processes take falls on both alike; the median round counts.
ROUNDS = 5
ROUND_SECONDS = 1
WARM_UP_SECONDS = 1
# One wrk thread: the machine has 2 cores, and nginx runs one worker (main_config's), so the client
# and the server each have a core; on more cores a second thread would not change the server's side.
WRK_THREADS = 1
WRK_MISSING = "wrk is not installed (Debian: apt-get install wrk)"

Row = tuple[str, str, str, bool | None]


def nginx_binary() -> str | None:
    """Where tests/test_stack.py finds nginx, or None when it is not installed."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    return binary if Path(binary).exists() else None


def bare_server(port: int, root: Path) -> str:
    """The whole server block of the bare nginx: files from `root`, nothing else."""
    return f"""
server {{
    listen 127.0.0.1:{port};
    root "{root}";
}}
"""


@contextmanager
def bare_nginx(binary: str, prefix: Path, root: Path, ready_path: str) -> Iterator[int]:
    """A bare nginx serving `root` on a free loopback port, once `ready_path` (a file under it) answers 200.

    Its main config is the project's (tests/test_stack.main_config): the same worker_processes,
    sendfile on, and an access log written to a file in nginx's "combined" format.
    """
    prefix.mkdir()
    port = free_port()
    server_file = prefix / "default.conf"
    server_file.write_text(bare_server(port, root), encoding="utf-8")
    main = prefix / "nginx.conf"
    main.write_text(main_config(prefix, server_file, as_root=os.geteuid() == 0), encoding="utf-8")
    with nginx_process(binary, prefix, main, f"http://127.0.0.1:{port}/{ready_path}"):
        yield port


# --- the load ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadRun:
    rate: float  # answers per second, successful or not
    requests: int
    failures: int  # answers other than 2xx/3xx, and socket errors


def wrk_run(url: str, seconds: float) -> LoadRun:
    done = subprocess.run(
        ["wrk", f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s", url],
        capture_output=True,
        text=True,
        check=True,
    )
    return parse_wrk(done.stdout)


def parse_wrk(output: str) -> LoadRun:
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    requests = re.search(r"^\s+(\d+) requests in ", output, re.MULTILINE)
    if not rate or not requests:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    failures = (int(bad.group(1)) if bad else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return LoadRun(rate=float(rate.group(1)), requests=int(requests.group(1)), failures=failures)


async def keep_alive_gets(port: int, path: str, seconds: float) -> LoadRun:
    """The fallback without wrk: CONNECTIONS keep-alive connections, GET after GET, for `seconds`."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    counts = {"ok": 0, "failed": 0}

    async def connection(deadline: float) -> None:
        while time.monotonic() < deadline:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                while time.monotonic() < deadline:
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                    await reader.readexactly(int(length.group(1)) if length else 0)
                    counts["ok" if head[9:10] in (b"2", b"3") else "failed"] += 1
                    if re.search(rb"(?i)\r\nconnection:\s*close", head):
                        break  # nginx closes a connection after keepalive_requests (1,000): open another
            finally:
                writer.close()

    started = time.monotonic()
    await asyncio.gather(*(connection(started + seconds) for _ in range(CONNECTIONS)))
    elapsed = time.monotonic() - started
    total = counts["ok"] + counts["failed"]
    return LoadRun(rate=total / elapsed, requests=total, failures=counts["failed"])


def load(port: int, path: str, seconds: float, with_wrk: bool) -> LoadRun:
    if with_wrk:
        return wrk_run(f"http://127.0.0.1:{port}{path}", seconds)
    return asyncio.run(keep_alive_gets(port, path, seconds))


# --- the comparison ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectLink:
    label: str
    project_path: str  # under the project's nginx: /images/...
    bare_path: str  # the same file under the bare nginx's root
    size: int


def direct_links_of(stack: Stack) -> list[DirectLink]:
    """Upload the two images through nginx; their originals and one thumbnail, as both servers name them."""
    png, jpeg = medium_png(), photo_jpeg()
    links = []
    for content, name in ((png, "medium.png"), (jpeg, "photo.jpg")):
        answer = stack.upload(content, name)
        if answer.status_code != 201:
            raise RuntimeError(f"upload of {name} through nginx: {answer.status_code} {answer.text}")
        links.append(answer.json()["filename"])
    png_name, jpeg_name = links
    thumbnail = f"thumbs/480/{jpeg_name}.webp"
    images = stack.app.images_dir
    return [
        DirectLink("256x256 PNG original", f"/images/{png_name}", f"/{png_name}", len(png)),
        DirectLink("12-MP JPEG original", f"/images/{jpeg_name}", f"/{jpeg_name}", len(jpeg)),
        DirectLink(
            "480 px WebP thumbnail", f"/images/{thumbnail}", f"/{thumbnail}", (images / thumbnail).stat().st_size
        ),
    ]


def security_check(project_port: int, bare_port: int, links: list[DirectLink]) -> list[str]:
    """What shows we measured the real config: the same bytes from both, the image headers from ours only."""
    problems = []
    for link in links:
        ours = httpx.get(f"http://127.0.0.1:{project_port}{link.project_path}")
        bare = httpx.get(f"http://127.0.0.1:{bare_port}{link.bare_path}")
        if ours.status_code != 200 or bare.status_code != 200 or ours.content != bare.content:
            problems.append(f"{link.label}: not the same file ({ours.status_code}, {bare.status_code})")
        for name in ("X-Content-Type-Options", "Content-Security-Policy"):
            if ours.headers.get(name) != IMAGE_SECURITY_HEADERS[name]:
                problems.append(f"{link.label}: the project's nginx sent {name}: {ours.headers.get(name)!r}")
            if name in bare.headers:
                problems.append(f"{link.label}: the bare nginx sent {name}")
    return problems


def worker_processes() -> str:
    """The count both nginx run with: the project's main config's (tests/test_stack.main_config)."""
    found = re.search(r"worker_processes (\w+);", main_config(Path("/prefix"), Path("/server.conf"), as_root=False))
    return found.group(1) if found else "(nginx's default)"


def rate_text(rate: float) -> str:
    return f"{rate:,.0f}/s"


@dataclass(frozen=True)
class Nginx:
    name: str
    port: int
    prefix: Path  # where its main config writes its pid file and logs

    def workers(self) -> list[psutil.Process]:
        return psutil.Process(int((self.prefix / "nginx.pid").read_text().strip())).children()


def compare_direct_links(database_url: str, workdir: Path) -> list[Row]:
    """Measure both nginx on each direct link; print the figures and ratios; return (figure, value, target, met)."""
    binary = nginx_binary()
    if binary is None:
        print("\nDirect links (issue 18): SKIPPED, nginx is not installed (Debian: apt-get install nginx)")
        return [("direct links, project nginx / bare nginx", "skipped: no nginx", f">= {GOAL}x", None)]
    with_wrk = shutil.which("wrk") is not None
    client = (
        f"wrk, {WRK_THREADS} thread, {CONNECTIONS} keep-alive connections"
        if with_wrk
        else f"a Python client ({CONNECTIONS} keep-alive connections) because {WRK_MISSING}: the figures are then"
        " bound by the client, not by nginx"
    )
    print(
        "\nDirect links (issue 18): the project's nginx (nginx.conf before a live app) against a bare nginx"
        f" (`root` at the same folder), same binary and main config (worker_processes {worker_processes()},"
        f" sendfile on, one access log line per request to a file); {client}; after {WARM_UP_SECONDS} s of"
        f" warm-up, {ROUNDS} rounds of {ROUND_SECONDS} s on each, alternating; the median round's requests/s"
    )
    folder = workdir / "direct-links"
    folder.mkdir()
    rows: list[Row] = []
    run_sql(database_url, "TRUNCATE images RESTART IDENTITY CASCADE")
    try:
        with (
            live_app(database_url, folder) as app,
            running_nginx(binary, folder / "nginx", app) as project_port,
        ):
            stack = Stack(url=f"http://127.0.0.1:{project_port}", port=project_port, app=app, workdir=folder)
            links = direct_links_of(stack)
            ready = links[0].bare_path.lstrip("/")
            with bare_nginx(binary, folder / "bare-nginx", app.images_dir, ready) as bare_port:
                problems = security_check(project_port, bare_port, links)
                verdict = "yes" if not problems else "NO: " + "; ".join(problems)
                print(f"  the project's nginx sends nosniff and the sandbox CSP, the bare one neither: {verdict}")
                figure = "direct links: the project's headers, none from bare nginx"
                rows.append((figure, verdict[:60], "yes", not problems))
                project = Nginx("project", project_port, folder / "nginx")
                bare = Nginx("bare", bare_port, folder / "bare-nginx")
                for link in links:
                    rows.extend(measure(link, project, bare, with_wrk))
            # nginx answered every direct link itself: none of them reached the app.
            reached = [link.label for link in links if link.project_path in stack.app_log()]
            if reached:
                print(f"  the app saw requests for: {', '.join(reached)}")
                rows.append(("direct links: served by nginx, not the app", f"app saw {len(reached)}", "none", False))
    finally:
        run_sql(database_url, "TRUNCATE images RESTART IDENTITY CASCADE")
    shutil.rmtree(folder)
    return rows


@dataclass
class Tally:
    """One server's rounds on one direct link."""

    nginx: Nginx
    path: str
    workers: list[psutil.Process]  # the CPU nginx's workers spend is the server's
    rates: list[float] = field(default_factory=list)
    requests: int = 0
    failures: int = 0
    cpu_seconds: float = 0.0

    def run(self, seconds: float, with_wrk: bool) -> None:
        before = self.cpu()
        run = load(self.nginx.port, self.path, seconds, with_wrk)
        self.cpu_seconds += self.cpu() - before
        self.rates.append(run.rate)
        self.requests += run.requests
        self.failures += run.failures

    def cpu(self) -> float:
        return sum(sum(worker.cpu_times()[:2]) for worker in self.workers)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def cpu_per_request_us(self) -> float:
        return self.cpu_seconds / max(self.requests, 1) * 1e6


def measure(link: DirectLink, project: Nginx, bare: Nginx, with_wrk: bool) -> list[Row]:
    ours = Tally(project, link.project_path, project.workers())
    theirs = Tally(bare, link.bare_path, bare.workers())
    for tally in (ours, theirs):
        load(tally.nginx.port, tally.path, WARM_UP_SECONDS, with_wrk)
    ratios = []
    for number in range(ROUNDS):
        for tally in (ours, theirs) if number % 2 == 0 else (theirs, ours):
            tally.run(ROUND_SECONDS, with_wrk)
        ratios.append(ours.rates[-1] / theirs.rates[-1])
    ratio = ours.rate / theirs.rate
    met = ratio >= GOAL
    verdict = f"goal >= {GOAL}x  {'met' if met else 'NOT met'}" if with_wrk else "(client-bound: install wrk)"
    print(
        f"    {link.label:<22} {link.size:>10,} bytes   project {rate_text(ours.rate):>9}"
        f"   bare {rate_text(theirs.rate):>9}   {ratio:5.2f}x   {verdict}"
    )
    print(
        f"      rounds {min(ratios):.2f}x to {max(ratios):.2f}x;  nginx CPU per request: project"
        f" {ours.cpu_per_request_us:.1f} us, bare {theirs.cpu_per_request_us:.1f} us"
    )
    figure = f"project nginx / bare nginx, {link.label}"
    # nginx's CPU per request shifts less with what other processes take than the rates do.
    cpu_ratio = ours.cpu_per_request_us / max(theirs.cpu_per_request_us, 1e-9)
    value = f"{ratio:.2f}x ({rate_text(ours.rate)} / {rate_text(theirs.rate)}; CPU/request {cpu_ratio:.2f}x)"
    if with_wrk:
        rows: list[Row] = [(figure, value, f">= {GOAL}x", met)]
    else:
        rows = [(figure, f"{value}, Python client", f">= {GOAL}x", None)]
    for tally in (ours, theirs):
        if tally.failures:
            name = tally.nginx.name
            print(f"      {name} nginx: {tally.failures} failed of {tally.requests}")
            rows.append((f"{figure}: {name} failures", f"{tally.failures} of {tally.requests}", "none", False))
    return rows
