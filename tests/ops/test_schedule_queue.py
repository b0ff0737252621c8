"""Two schedulers (python -m imagehost schedule, as compose runs it, here twice) share one
database: a scheduled backup is made once, not once per scheduler, and a scheduler stopped with
SIGTERM ends cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

from imagehost.ops.backup import list_backups
from tests.conftest import run_sql
from tests.ops.test_backup import cli_environment, upload_some


def scheduler(settings, name: str, **env: str) -> subprocess.Popen:
    environment = cli_environment(
        settings, INSTANCE_NAME=name, BACKUP_INTERVAL="1d", SCRUB_INTERVAL="0", JOB_STALLED_SECONDS="3", **env
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


def test_a_scheduler_killed_mid_backup_leaves_its_tick_to_the_other(make_client, settings, tmp_path):
    """SIGKILL while the backup's pg_dump runs: the other scheduler's sweep finds the tick's worker
    silent, runs the tick again, and the backup (still due) is made once, the first one's partial
    file removed."""
    from imagehost.ops.backup.postgres import find_pg_tool

    settings.log_dir.mkdir(parents=True, exist_ok=True)
    upload_some(make_client(), 1)
    settings = replace(settings, backup_dir=tmp_path / "backups")
    server_major = int(run_sql(settings.database_url, "SHOW server_version_num")[0][0]) // 10000
    real_pg_dump = find_pg_tool("pg_dump", server_major)
    # The first scheduler's pg_dump hangs (after saying so), so the kill lands mid-backup every time.
    shims, started = tmp_path / "shims", tmp_path / "pg_dump.pid"
    shims.mkdir()
    (shims / "pg_dump").write_text(
        f'#!/bin/sh\nif [ "$1" = "--version" ]; then exec "{real_pg_dump}" "$@"; fi\n'
        f'echo $$ > "{started}"\nexec sleep 600\n'
    )
    (shims / "pg_dump").chmod(0o755)
    first = scheduler(settings, "one", PATH=f"{shims}{os.pathsep}{os.environ['PATH']}")
    second = None
    try:
        deadline = time.monotonic() + 60
        while not started.exists() or not started.read_text().strip():
            assert first.poll() is None, "the first scheduler died"
            assert time.monotonic() < deadline, "the first scheduler's backup never started"
            time.sleep(0.1)
        first.kill()
        first.wait(10)
        os.kill(int(started.read_text()), signal.SIGKILL)
        assert not list_backups(settings.backup_dir)
        # The next tick passes while no scheduler runs: the second's first act is to queue it, so the
        # killed tick, when it is swept, finds a tick of the same queueing lock already waiting.
        time.sleep(15 - time.time() % 15 + 1)
        second = scheduler(settings, "two")
        deadline = time.monotonic() + 90
        while not list_backups(settings.backup_dir):
            assert second.poll() is None, "the second scheduler died"
            assert time.monotonic() < deadline, "the killed scheduler's tick was never run again"
            time.sleep(0.5)
        time.sleep(20)  # another tick or more: nothing is made twice
        assert len(list_backups(settings.backup_dir)) == 1
        log = (settings.log_dir / "app-two.log").read_text()
        assert log.count("] Backup: ") == 1, log
        assert "a schedule_tick job's worker stopped answering" in log
        assert not list(settings.backup_dir.glob(".*.partial")), "the killed backup's partial files stayed"
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                assert process.wait(30) == 0
