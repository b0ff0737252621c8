"""`python -m imagehost schedule`: a backup every BACKUP_INTERVAL, a consistency scrub every SCRUB_INTERVAL.

It runs forever (compose's `scheduler` service). When a job is next due comes from what is on
disk, so a restart neither repeats nor skips one: the backup's from the newest backup's name (a
backup made by hand counts too), the scrub's from `.schedule.json` in BACKUP_DIR. A job that fails
is logged and tried again after RETRY_SECONDS (or its interval, if shorter), never in a tight loop.
`run_due(now)` runs one cycle for a given clock reading: the loop is that, then a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from imagehost.logging import action_log
from imagehost.ops.backup import list_backups, make_backup
from imagehost.settings import Settings

RETRY_SECONDS = 15 * 60
# Wake up now and then even when nothing is due: a backup made by hand moves the next one.
MAX_SLEEP_SECONDS = 300
STATE = ".schedule.json"
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
    def __init__(self, settings: Settings, *, backup: Job = scheduled_backup, scrub_job: Job = scrub) -> None:
        self.settings = settings
        self.jobs: dict[str, tuple[int, Job]] = {
            BACKUP: (settings.backup_interval_seconds, backup),
            SCRUB: (settings.scrub_interval_seconds, scrub_job),
        }
        self.retry_at: dict[str, float] = {}
        self.log = action_log()

    @property
    def state_path(self) -> Path:
        return self.settings.backup_dir / STATE

    def _read_state(self) -> dict[str, float]:
        try:
            return {key: float(value) for key, value in json.loads(self.state_path.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def _record(self, job: str, at: float) -> None:
        state = self._read_state()
        state[job] = at
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        temporary.replace(self.state_path)

    def last_run(self, job: str) -> float | None:
        if job == BACKUP:
            backups = list_backups(self.settings.backup_dir)
            return backups[-1].made_at.timestamp() if backups else None
        return self._read_state().get(job)

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
        done = []
        for job, (interval, action) in self.jobs.items():
            due = self.due_at(job)
            if due is None or due > now:
                continue
            try:
                await action(self.settings, now)
            except Exception as failure:
                self.retry_at[job] = now + min(RETRY_SECONDS, interval)
                if job != BACKUP:  # make_backup logs its own failures
                    self.log.error(f"{job} failed: {type(failure).__name__}: {failure}", action="Schedule")
                continue
            self.retry_at.pop(job, None)
            self._record(job, now)
            done.append(job)
        return done

    def seconds_until_next(self, now: float) -> float:
        dues = [due for job in self.jobs if (due := self.due_at(job)) is not None]
        wait = min(dues) - now if dues else MAX_SLEEP_SECONDS
        return min(max(wait, 1.0), MAX_SLEEP_SECONDS)

    async def run_forever(self, stop: asyncio.Event, clock: Callable[[], float] = time.time) -> None:
        """Cycles until `stop` is set; a job running then is cancelled (a half-made backup is removed)."""
        backup_every, scrub_every = self.jobs[BACKUP][0], self.jobs[SCRUB][0]
        self.log.info(
            f"started: a backup every {describe_interval(backup_every)} into {self.settings.backup_dir} "
            f"(keeping {self.settings.backup_keep}), a consistency scrub every {describe_interval(scrub_every)}.",
            action="Schedule",
        )
        while not stop.is_set():
            cycle = asyncio.ensure_future(self.run_due(clock()))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({cycle, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not cycle.done():
                cycle.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await cycle
                break
            cycle.result()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.seconds_until_next(clock()))
        self.log.info("stopped.", action="Schedule")


def schedule_command(settings: Settings) -> int:
    """Run the schedule until SIGTERM or SIGINT (compose stops the service with SIGTERM)."""
    import signal

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Schedule(settings).run_forever(stop)

    asyncio.run(run())
    return 0
