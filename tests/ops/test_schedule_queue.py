"""Two schedulers (python -m imagehost schedule, as compose runs it, here twice) share one
database: a scheduled backup is made once, not once per scheduler, and a scheduler stopped with
SIGTERM ends cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import replace

from imagehost.ops.backup import list_backups
from tests.conftest import run_sql
from tests.ops.test_backup import cli_environment, upload_some


def scheduler(settings, name: str) -> subprocess.Popen:
    environment = cli_environment(
        settings, INSTANCE_NAME=name, BACKUP_INTERVAL="1d", SCRUB_INTERVAL="0", JOB_STALLED_SECONDS="3"
    )
    output = (settings.log_dir.parent / f"{name}.out").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "imagehost", "schedule"], env=environment, stdout=output, stderr=subprocess.STDOUT
    )


def test_two_schedulers_make_a_scheduled_backup_once(make_client, settings, tmp_path):
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    upload_some(make_client(), 1)
    settings = replace(settings, backup_dir=tmp_path / "backups")
    first, second = scheduler(settings, "one"), scheduler(settings, "two")
    try:
        deadline = time.monotonic() + 60
        while not list_backups(settings.backup_dir):
            assert first.poll() is None and second.poll() is None, "a scheduler died"
            assert time.monotonic() < deadline, "no scheduled backup within a minute"
            time.sleep(0.5)
        # Two more ticks (every 15 s): the day's backup is made; nobody makes another.
        time.sleep(35)
        assert len(list_backups(settings.backup_dir)) == 1
        logs = [(settings.log_dir / f"app-{name}.log").read_text() for name in ("one", "two")]
        assert sum(log.count("] Backup: ") for log in logs) == 1, logs
        assert all("Schedule: started: a backup every 1 d" in log for log in logs)
        ran = run_sql(settings.database_url, "SELECT job FROM schedule_runs WHERE ran_at IS NOT NULL")
        assert [row[0] for row in ran] == ["backup"]
    finally:
        for process in (first, second):
            process.send_signal(signal.SIGTERM)
        for process in (first, second):
            assert process.wait(30) == 0
    assert all("Schedule: stopped." in (settings.log_dir / f"app-{name}.log").read_text() for name in ("one", "two"))
