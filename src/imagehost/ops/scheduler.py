"""`python -m imagehost schedule`: a backup every BACKUP_INTERVAL, a consistency scrub every SCRUB_INTERVAL.

It runs forever (compose's `scheduler` service), as a worker of the job queue's `schedule` queue
(tasks/queue.py): every TICK a `schedule_tick` task is deferred, once per tick however many
schedulers run on however many machines (procrastinate keeps one job per periodic tick), and
whichever scheduler takes it runs what is due. A scheduler killed mid-backup leaves its tick to
another (the queue's sweep), which finds the backup still due and makes it.

When a job is next due comes from PostgreSQL (`schedule_runs`), so neither a restart nor a second
scheduler repeats or skips one; a backup's last run is also the newest backup's name in BACKUP_DIR
(a backup made by hand counts too). A job that fails is logged and tried again after RETRY_SECONDS
(or its interval, if shorter), never in a tight loop. `run_due(now)` runs one tick for a given clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg_pool

from imagehost.logging import action_log
from imagehost.ops.backup import list_backups, make_backup
from imagehost.settings import Settings
from imagehost.tasks.queue import SCHEDULE, JobQueue, Run, TaskKind

RETRY_SECONDS = 15 * 60
TICK = "* * * * * */15"  # cron, seconds last: every 15 s
BACKUP, SCRUB = "backup", "scrub"

Job = Callable[[Settings, float], Awaitable[None]]


def describe_interval(seconds: int) -> str:
    if seconds == 0:
        return "never"
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


async def scheduled_backup(settings: Settings, now: float) -> None:
    """A backup named after the scheduler's clock, pruned to BACKUP_KEEP (make_backup logs it)."""
    await make_backup(settings, now=lambda: dt.datetime.fromtimestamp(now, dt.UTC))


async def scrub(settings: Settings, now: float) -> None:
    """The consistency check, read-only; its findings go to app.log."""
    log = action_log()
    try:
        from imagehost.ops.consistency import run_check
    except ImportError:
        log.warning("scrub skipped: the consistency check is not available in this version.", action="Scrub")
        return
    report = await run_check(settings)
    log.info(f"scheduled check done: {report.summary()}", action="Scrub")


class Schedule:
    """What is due and when it last ran, read and written through `pool` (the job queue's connections)."""

    def __init__(
        self,
        settings: Settings,
        pool: psycopg_pool.AsyncConnectionPool,
        *,
        backup: Job = scheduled_backup,
        scrub_job: Job = scrub,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.jobs: dict[str, tuple[int, Job]] = {
            BACKUP: (settings.backup_interval_seconds, backup),
            SCRUB: (settings.scrub_interval_seconds, scrub_job),
        }
        self.ran_at: dict[str, float] = {}
        self.retry_at: dict[str, float] = {}
        self.log = action_log()

    async def load(self) -> None:
        """When each job last ran well and when a failed one is tried again, as every scheduler sees it."""
        async with self.pool.connection() as connection:
            cursor = await connection.execute("SELECT job, ran_at, retry_at FROM schedule_runs")
            rows = await cursor.fetchall()
        self.ran_at = {job: ran_at.timestamp() for job, ran_at, _ in rows if ran_at is not None}
        self.retry_at = {job: retry_at.timestamp() for job, _, retry_at in rows if retry_at is not None}

    async def _record(self, job: str, *, ran_at: float | None = None, retry_at: float | None = None) -> None:
        def stamp(at: float | None) -> dt.datetime | None:
            return None if at is None else dt.datetime.fromtimestamp(at, dt.UTC)

        async with self.pool.connection() as connection:
            await connection.execute(
                "INSERT INTO schedule_runs (job, ran_at, retry_at) VALUES (%s, %s, %s) ON CONFLICT (job) DO UPDATE"
                " SET ran_at = COALESCE(EXCLUDED.ran_at, schedule_runs.ran_at), retry_at = EXCLUDED.retry_at",
                (job, stamp(ran_at), stamp(retry_at)),
            )
        if ran_at is not None:
            self.ran_at[job] = ran_at
        if retry_at is None:
            self.retry_at.pop(job, None)
        else:
            self.retry_at[job] = retry_at

    def last_run(self, job: str) -> float | None:
        ran = self.ran_at.get(job)
        if job == BACKUP:
            backups = list_backups(self.settings.backup_dir)
            if backups:
                ran = max(ran or 0.0, backups[-1].made_at.timestamp())
        return ran

    def due_at(self, job: str) -> float | None:
        """When `job` is next due (epoch seconds; 0 for at once); None when it is turned off."""
        interval, _ = self.jobs[job]
        if interval == 0:
            return None
        last = self.last_run(job)
        due = 0.0 if last is None else last + interval
        return max(due, self.retry_at.get(job, 0.0))

    async def run_due(self, now: float) -> list[str]:
        """Run every job due at `now`, one after the other; returns the names of those that ran well."""
        await self.load()
        done = []
        for job, (interval, action) in self.jobs.items():
            due = self.due_at(job)
            if due is None or due > now:
                continue
            try:
                await action(self.settings, now)
            except Exception as failure:
                await self._record(job, retry_at=now + min(RETRY_SECONDS, interval))
                if job != BACKUP:  # make_backup logs its own failures
                    self.log.error(f"{job} failed: {type(failure).__name__}: {failure}", action="Schedule")
                continue
            await self._record(job, ran_at=now)
            done.append(job)
        return done

    def describe(self) -> str:
        backup_every, scrub_every = self.jobs[BACKUP][0], self.jobs[SCRUB][0]
        return (
            f"a backup every {describe_interval(backup_every)} into {self.settings.backup_dir} "
            f"(keeping {self.settings.backup_keep}), a consistency scrub every {describe_interval(scrub_every)}"
        )


async def _tick(run: Run, timestamp: int, **_ignored: Any) -> None:
    """One tick of the schedule, in whichever scheduler took it."""
    schedule: Schedule = run.services["schedule"]
    await schedule.run_due(time.time())


# Deferred once per TICK by the schedulers together; one tick waits at most, one runs at a time.
SCHEDULE_TICK = TaskKind(
    name="schedule_tick", run=_tick, queue=SCHEDULE, lock="schedule", queueing_lock="schedule", periodic=TICK
)


def schedule_command(settings: Settings) -> int:
    """Run the schedule until SIGTERM or SIGINT (compose stops the service with SIGTERM)."""
    import signal

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        queue = JobQueue(settings, [SCHEDULE_TICK])
        schedule = Schedule(settings, queue.pool)
        log = action_log()
        await queue.open()
        queue.start_worker([SCHEDULE], 1, {"schedule": schedule})
        log.info(f"started: {schedule.describe()}.", action="Schedule")
        try:
            await stop.wait()
        finally:
            await queue.close()  # a tick running now is cut; another scheduler (or the next start) takes it
            log.info("stopped.", action="Schedule")

    asyncio.run(run())
    return 0
