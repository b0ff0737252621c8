"""`python -m imagehost serve`: uvicorn with WEB_CONCURRENCY app processes, as compose and `just run` start it.

With more than one process, prometheus-client keeps each process's metrics in PROMETHEUS_MULTIPROC_DIR
(README: Metrics): when it is not set, a fresh folder is made for this server and removed after it;
when it is, the values of an earlier run are emptied out of it first. Everything else that several
processes share lives in PostgreSQL (rate limits: web/stores.py) or is locked across processes
(the staging markers, the jobs' runner rows), so the processes need nothing else from each other.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# uvicorn's access log without delete keys (imagehost/access_log.py).
LOG_CONFIG = PROJECT_ROOT / "deploy" / "uvicorn-logging.json"
APP_FACTORY = "imagehost.app:app_from_environment"


def metrics_folder(processes: int) -> Path | None:
    """The folder to make for the processes' metrics (removed after the server), or None."""
    if processes <= 1:
        return None
    if configured := os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip():
        folder = Path(configured)
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob("*.db"):  # an earlier run's values: counters restart at 0
            leftover.unlink(missing_ok=True)
        return None
    made = Path(tempfile.mkdtemp(prefix="imagehost-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(made)  # read by every process at its first import
    return made


def serve(host: str, port: int, forwarded_allow_ips: str) -> int:
    import uvicorn  # here: the operator commands need none of it

    from imagehost.settings import Settings

    processes = Settings.from_env().web_concurrency  # refuses bad settings before any process starts
    made = metrics_folder(processes)
    try:
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=processes,
            proxy_headers=True,
            forwarded_allow_ips=forwarded_allow_ips,
            log_config=str(LOG_CONFIG),
        )
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    return 0
