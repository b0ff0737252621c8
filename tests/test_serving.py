"""`python -m imagehost serve` with WEB_CONCURRENCY=2: two app processes behind one port, each with
its own image workers, whose metrics and rate limits add up as if they were one."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import psutil
from prometheus_client.mmap_dict import MmapedDict

from tests.conftest import png_bytes
from tests.live import live_app

METRICS_TOKEN = "serving-metrics-token"


def app_processes(supervisor: psutil.Process) -> list[psutil.Process]:
    return [child for child in supervisor.children() if "spawn_main" in " ".join(child.cmdline())]


def image_workers(app_process: psutil.Process) -> list[psutil.Process]:
    return app_processes(app_process)


def upload_on_new_connection(url: str, number: int) -> httpx.Response:
    # A fresh connection each time: the kernel spreads them over the processes sharing the socket.
    with httpx.Client(timeout=30) as client:
        return client.post(
            f"{url}/upload", files={"file": (f"shot-{number}.png", png_bytes(40 + number, 30), "image/png")}
        )


def stored_uploads(url: str) -> float:
    answer = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
    assert answer.status_code == 200
    found = re.findall(r"^imagehost_uploads_total\{(.*)\} (\S+)$", answer.text, re.M)
    return sum(
        float(value) for labels, value in found if {'format="png"', 'outcome="stored"'} <= set(labels.split(","))
    )


def processes_that_answered_uploads(metrics_folder: Path) -> set[int]:
    """The app processes whose own counters (prometheus-client's file per process) saw a POST /upload."""
    answered = set()
    for path in metrics_folder.glob("counter_*.db"):
        for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(str(path)):
            _metric, sample, labels, _help = json.loads(key)
            if sample == "imagehost_requests_total" and labels.get("path") == "/upload" and value:
                answered.add(int(path.stem.removeprefix("counter_")))
    return answered


def test_two_app_processes_share_the_port_their_metrics_and_the_rate_limit(clean_database, tmp_path: Path):
    settings = {"WEB_CONCURRENCY": "2", "WORKER_PROCESSES": "1", "METRICS_TOKEN": METRICS_TOKEN}
    with live_app(clean_database, tmp_path, **settings, UPLOAD_RATE_LIMIT="6") as app:
        supervisor = psutil.Process(app.process.pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            len(processes := app_processes(supervisor)) == 2 and all(map(image_workers, processes))
        ):
            time.sleep(0.1)
        assert len(processes) == 2
        folders = {Path(process.environ()["PROMETHEUS_MULTIPROC_DIR"]) for process in processes}
        assert len(folders) == 1  # one folder made for the server, shared by its processes
        (metrics_folder,) = folders
        # Each app process has its own pool of WORKER_PROCESSES image workers.
        assert [len(image_workers(process)) for process in processes] == [1, 1]

        statuses = [upload_on_new_connection(app.url, number).status_code for number in range(9)]
        # Six uploads a minute from this client, counted together by both processes...
        assert statuses == [201] * 6 + [429] * 3
        # ...and refused by both once past it: try until each process has answered some.
        for number in range(9, 100):
            if processes_that_answered_uploads(metrics_folder) == {process.pid for process in processes}:
                break
            assert upload_on_new_connection(app.url, number).status_code == 429
        assert processes_that_answered_uploads(metrics_folder) == {process.pid for process in processes}
        # Every scrape, whichever process answers it, counts the uploads of both.
        assert {stored_uploads(app.url) for _ in range(6)} == {6.0}
    assert not metrics_folder.exists()  # removed with the server
