"""A live ImageHost: uvicorn started the way docker compose starts it, on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveApp:
    url: str
    port: int
    process: subprocess.Popen
    images_dir: Path
    log_dir: Path
    env: dict[str, str]


def app_command(port: int) -> list[str]:
    """The same command as the Dockerfile's (`python -m imagehost serve`), bound to loopback."""
    return [
        *(sys.executable, "-m", "imagehost", "serve"),
        *("--host", "127.0.0.1", "--port", str(port), "--forwarded-allow-ips", "127.0.0.1"),
    ]


def wait_until_healthy(
    url: str, process: subprocess.Popen, name: str, output: Callable[[], str], seconds: float
) -> None:
    """Until `url` answers 200; fail with the process's own words if it dies or takes too long."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {output()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not answer {url} in {seconds:.0f} s")
        time.sleep(0.05)


@contextmanager
def live_app(database_url: str, workdir: Path, **settings: str) -> Iterator[LiveApp]:
    port = free_port()
    images_dir, log_dir = workdir / "images", workdir / "logs"
    env = {
        **os.environ,
        "PYTHONPATH": f"{PROJECT_ROOT / 'src'}{os.pathsep}{PROJECT_ROOT}",
        "DATABASE_URL": database_url,
        "IMAGES_DIR": str(images_dir),
        "LOG_DIR": str(log_dir),
        "SECRET_KEY": "live-test-secret",
        # The suites and the bench upload far faster than any person: no per-client limits here
        # (tests/images/test_upload.py checks the limit itself).
        "UPLOAD_RATE_LIMIT": "0",
        "LOGIN_RATE_LIMIT": "0",
        # One app process with two image workers, whatever the machine's cores (the defaults follow
        # them): the tests that look at the process tree and the bench see the same tree everywhere.
        "WEB_CONCURRENCY": "1",
        "WORKER_PROCESSES": "2",
        **settings,
    }
    output = (workdir / "uvicorn.out").open("wb")
    process = subprocess.Popen(app_command(port), env=env, cwd=PROJECT_ROOT, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(f"{url}/health", process, "uvicorn", lambda: (workdir / "uvicorn.out").read_text(), 30)
        yield LiveApp(url=url, port=port, process=process, images_dir=images_dir, log_dir=log_dir, env=env)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        output.close()


def require(tool: str) -> None:
    """Skip when a system tool is missing locally; in CI (IMAGEHOST_REQUIRE_STACK=1) fail instead."""
    import shutil

    import pytest

    if shutil.which(tool) or Path(tool).exists():
        return
    if os.environ.get("IMAGEHOST_REQUIRE_STACK"):
        pytest.fail(f"{tool} is required in CI but not installed")
    pytest.skip(f"{tool} is not installed")
