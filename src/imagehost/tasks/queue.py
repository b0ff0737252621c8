"""One process's view of the job queue: defer tasks, run a worker for some queues, and hand the
jobs of a worker that died (SIGKILL, a lost machine) to another.

procrastinate keeps the jobs in PostgreSQL (migration ops_0003_job_queue): a job deferred by one
instance is taken by whichever worker asks first, on any machine, each job by one worker. Every
worker writes a heartbeat; the jobs of a worker silent for JOB_STALLED_SECONDS go back to the
queue (the sweep, in every worker), so a killed worker's job is retried, not lost. A job is tried
at most ATTEMPTS times, counting those cut short; a task that refuses its input for good (an
ImageHostError) ends there and says so in its own table, it is not retried.

The connections come from a pool opened without waiting, so an app starts while PostgreSQL is
away (its pages say so) and the worker starts as soon as PostgreSQL answers.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import procrastinate
import procrastinate.worker
import psycopg_pool
from procrastinate.jobs import Status

from imagehost.errors import DatabaseUnavailable
from imagehost.logging import action_log
from imagehost.settings import Settings

UPLOADS, THUMBNAILS, SCHEDULE = "uploads", "thumbnails", "schedule"
# procrastinate's tables (migration ops_0003_job_queue): what is queued or running, never backed up.
QUEUE_TABLES = ("procrastinate_jobs", "procrastinate_events", "procrastinate_periodic_defers", "procrastinate_workers")
ATTEMPTS = 3  # runs of one job at most, counting those a dead worker cut short
RETRY_WAIT_SECONDS = 5
RETRY_LINEAR_SECONDS = 10  # a job that failed waits 5 s, then 15 s: an outage of the store may pass
RESTART_SECONDS = 5.0  # a worker that stopped on an error (PostgreSQL away) starts again after this
POOL_TIMEOUT_SECONDS = 10.0
CLOSE_SECONDS = 10.0
# The worker and its sweep start this long after the app: its first requests have the process first.
START_DELAY_SECONDS = 1.0
WORKER_TASK = "job worker"


@dataclass(frozen=True)
class Run:
    """What a task gets besides its arguments: the process's services and which try this is."""

    services: dict[str, Any]
    attempt: int  # 0 for the first run

    @property
    def last(self) -> bool:
        return self.attempt >= ATTEMPTS - 1


@dataclass(frozen=True)
class TaskKind:
    name: str
    run: Callable[..., Awaitable[None]]  # run(Run, **arguments)
    queue: str
    lock: str | None = None  # jobs with one lock run one after the other
    queueing_lock: str | None = None  # at most one job of this lock waits in the queue
    periodic: str | None = None  # a cron line (seconds as its sixth field): deferred once per tick in all


def worker_name(settings: Settings) -> str:
    return f"{settings.instance_name or socket.gethostname()}:{os.getpid()}"


@dataclass
class JobQueue:
    settings: Settings
    kinds: Iterable[TaskKind]
    # Called after the sweep gave up on jobs (their last attempt died with its worker).
    after_giving_up: Callable[[], Awaitable[Any]] | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _opened: bool = False
    _closing: bool = False
    _worker: procrastinate.worker.Worker | None = None

    def __post_init__(self) -> None:
        self.log = action_log()
        self.stalled_after = float(self.settings.job_stalled_seconds)
        self.pool = psycopg_pool.AsyncConnectionPool(
            self.settings.database_url,
            min_size=1,
            max_size=4,
            open=False,
            timeout=POOL_TIMEOUT_SECONDS,
            check=psycopg_pool.AsyncConnectionPool.check_connection,
        )
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector())
        self.kinds = list(self.kinds)
        for kind in self.kinds:
            self._register(kind)

    def _register(self, kind: TaskKind) -> None:
        async def task(context: procrastinate.JobContext, **arguments: Any) -> None:
            assert context.job is not None
            await kind.run(Run(context.additional_context, context.job.attempts), **arguments)

        task.__name__ = kind.name
        registered = self.app.task(
            name=kind.name,
            queue=kind.queue,
            pass_context=True,
            lock=kind.lock,
            queueing_lock=kind.queueing_lock,
            retry=procrastinate.RetryStrategy(
                max_attempts=ATTEMPTS - 1, wait=RETRY_WAIT_SECONDS, linear_wait=RETRY_LINEAR_SECONDS
            ),
        )(task)
        if kind.periodic is not None:
            self.app.periodic(cron=kind.periodic, periodic_id=kind.name)(registered)

    async def open(self) -> None:
        """Connect (in the background: this does not wait for PostgreSQL)."""
        await self.pool.open(wait=False)
        await self.app.open_async(pool=self.pool)
        self._opened = True

    async def close(self) -> None:
        """Stop the worker (its jobs are cut and go back to the queue) and the connections. Bounded:
        a part that does not stop within CLOSE_SECONDS is logged and left, the shutdown goes on.

        The worker is asked to stop, not cancelled: a cancellation that lands while it starts is
        lost (procrastinate's run shields its loop), and a stop asked before its loop runs is
        forgotten by it, so the stop is asked again until it has ended."""
        self._closing = True
        stopping = asyncio.get_running_loop().time() + CLOSE_SECONDS
        for task in self._tasks:
            if task.get_name() != WORKER_TASK or self._worker is None:  # not started yet: only sleeping
                task.cancel()
        while not all(task.done() for task in self._tasks) and asyncio.get_running_loop().time() < stopping:
            if self._worker is not None:
                self._worker.stop()
            await asyncio.wait(self._tasks, timeout=0.1)
        for task in self._tasks:
            if not task.done():
                where = "; ".join(f"{frame.f_code.co_name}:{frame.f_lineno}" for frame in task.get_stack())
                self.log.warning(f"the {task.get_name()} did not stop in time ({where}).", action="Jobs")
                task.cancel()
        self._tasks.clear()
        if self._opened:
            self._opened = False
            try:
                await asyncio.wait_for(self.pool.close(timeout=CLOSE_SECONDS), CLOSE_SECONDS + 1)
            except TimeoutError:
                self.log.warning("the job queue's connections did not close in time.", action="Jobs")

    async def defer(self, name: str, **arguments: Any) -> int:
        """Queue a job of task `name`; its id. A queue that cannot be reached: DatabaseUnavailable (503)."""
        return (await self.defer_many(name, [arguments]))[0]

    async def defer_many(self, name: str, arguments: list[dict[str, Any]]) -> list[int]:
        """Queue one job of task `name` per set of arguments, in one statement; their ids in order."""
        try:
            return await self.app.tasks[name].batch_defer_async(*arguments)
        except (procrastinate.exceptions.ConnectorException, psycopg_pool.PoolTimeout) as error:
            self.log.error(f"cannot queue a {name} job: {error}", action="Database")
            raise DatabaseUnavailable(reason=str(error)) from None

    # --- working ---------------------------------------------------------------------------------

    def start_worker(self, queues: list[str], concurrency: int, services: dict[str, Any]) -> None:
        """Run jobs of `queues` in this process, `concurrency` at a time, until close()."""
        self._tasks.append(asyncio.create_task(self._work(queues, concurrency, services), name=WORKER_TASK))
        self._tasks.append(asyncio.create_task(self._sweep(queues), name="job sweep"))

    async def _work(self, queues: list[str], concurrency: int, services: dict[str, Any]) -> None:
        await asyncio.sleep(START_DELAY_SECONDS)
        while not self._closing:
            self._worker = procrastinate.worker.Worker(
                app=self.app,
                queues=queues,
                concurrency=concurrency,
                name=worker_name(self.settings),
                install_signal_handlers=False,
                additional_context=services,
                delete_jobs="successful",
                shutdown_graceful_timeout=0,  # cut at once: a cut job is tried again (elsewhere)
                update_heartbeat_interval=self.stalled_after / 6,
                stalled_worker_timeout=self.stalled_after,
            )
            try:
                await self._worker.run()
                return
            except Exception as error:  # PostgreSQL away: the queue's jobs wait for us or another worker
                if self._closing:
                    return
                self.log.warning(
                    f"the job worker stopped ({type(error).__name__}: {error}); starting again in"
                    f" {RESTART_SECONDS:.0f} s.",
                    action="Database",
                )
                await asyncio.sleep(RESTART_SECONDS)

    async def _sweep(self, queues: list[str]) -> None:
        await asyncio.sleep(START_DELAY_SECONDS)
        while True:
            await asyncio.sleep(self.stalled_after / 3)
            try:
                await self.sweep(queues)
            except Exception as error:  # tried again at the next sweep
                self.log.warning(f"the stalled jobs' sweep failed: {type(error).__name__}: {error}", action="Database")

    async def sweep(self, queues: list[str]) -> tuple[int, int]:
        """Jobs of workers silent for JOB_STALLED_SECONDS go back to the queue, or end failed after their
        last attempt. Every worker sweeps; a job another sweep moved first is left alone.
        Returns (retried, given up)."""
        manager = self.app.job_manager
        retried = given_up = 0
        for queue in queues:
            for job in await manager.get_stalled_jobs(seconds_since_heartbeat=self.stalled_after, queue=queue):
                outcome = "queued again." if job.attempts < ATTEMPTS - 1 else f"given up after {ATTEMPTS} attempts."
                try:
                    if job.attempts < ATTEMPTS - 1:
                        await manager.retry_job(job)
                        retried += 1
                    else:
                        await manager.finish_job(job, status=Status.FAILED, delete_job=False)
                        given_up += 1
                except procrastinate.exceptions.UniqueViolation:
                    # A job of its queueing lock waits already (a periodic tick queued since): that one
                    # does its work. Left running, the dead job would hold its lock, and the waiting one, forever.
                    if not await self._end(job):
                        continue
                    outcome = "the one waiting behind it takes its place."
                except procrastinate.exceptions.ConnectorException:
                    continue  # another worker's sweep took it
                self.log.warning(f"a {job.task_name} job's worker stopped answering: {outcome}", action="Jobs")
        await manager.prune_stalled_workers(self.stalled_after)
        if given_up and self.after_giving_up is not None:
            await self.after_giving_up()
        return retried, given_up

    async def _end(self, job: procrastinate.jobs.Job) -> bool:
        """End a dead worker's job for good; False when another sweep moved it first."""
        try:
            await self.app.job_manager.finish_job(job, status=Status.FAILED, delete_job=True)
        except procrastinate.exceptions.ConnectorException:
            return False
        return True
