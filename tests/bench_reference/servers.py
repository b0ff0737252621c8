"""Starting a reference server fresh on a free loopback port, and stopping it by its PID."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.live import PROJECT_ROOT, free_port, wait_until_healthy

START_SECONDS = 30


@dataclass
class ReferenceServer:
    name: str
    url: str
    process: subprocess.Popen  # the root of its process tree (uvicorn, or gunicorn's master)
    upload_dir: Path


def bare_asgi_command(port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "uvicorn", "tests.bench_reference.bare_asgi:app"),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--lifespan", "off"),
        *("--no-access-log", "--log-level", "warning"),
    ]


def naive_flask_command(port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "gunicorn", "tests.bench_reference.naive_flask:app"),
        *("--bind", f"127.0.0.1:{port}", "--workers", "2", "--worker-class", "sync", "--log-level", "warning"),
    ]


@contextmanager
def serving(name: str, command: list[str], workdir: Path, port: int, **env: str) -> Iterator[ReferenceServer]:
    """Run `command` with its own upload folder under `workdir` until the block ends."""
    upload_dir = workdir / "uploads"
    upload_dir.mkdir(parents=True)
    environment = {
        **os.environ,
        "PYTHONPATH": f"{PROJECT_ROOT / 'src'}{os.pathsep}{PROJECT_ROOT}",
        "BENCH_UPLOAD_DIR": str(upload_dir),
        **env,
    }
    log = workdir / "server.out"
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=environment, cwd=PROJECT_ROOT, stdout=output, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(f"{url}/health", process, name, log.read_text, START_SECONDS)
            yield ReferenceServer(name=name, url=url, process=process, upload_dir=upload_dir)
        finally:
            process.terminate()  # gunicorn's master stops its workers on SIGTERM
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def bare_asgi(workdir: Path) -> AbstractContextManager[ReferenceServer]:
    port = free_port()
    return serving("bare ASGI (uvicorn, 1 process)", bare_asgi_command(port), workdir, port)


def naive_flask(workdir: Path, database_url: str) -> AbstractContextManager[ReferenceServer]:
    port = free_port()
    return serving(
        "naive Flask (gunicorn, 2 sync workers)", naive_flask_command(port), workdir, port, DATABASE_URL=database_url
    )
