"""Thumbnail regeneration (`just thumbnails [--all]`) as tasks of the job queue (tasks/queue.py).

The command splits the images into batches of consecutive ids, writes each batch as a row of
`thumbnail_batches` and queues a `thumbnails` task for it. Every app instance's worker takes
batches (the `thumbnails` queue, beside the ZIP jobs' `uploads`), and so does the command's own
worker unless it is told to leave them to the instances (`--queue-only`), so the work is shared by
every machine that runs the service. A worker killed mid-batch leaves its batch to the queue's
sweep, which queues it again: making a thumbnail twice is harmless. The command waits until every
batch of its run has ended, prints the totals its batches wrote and removes its run's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imagehost.database import connected
from imagehost.images.service import ImageService
from imagehost.images.storage import ImageStore
from imagehost.images.tables import Image
from imagehost.images.workers import image_workers
from imagehost.logging import action_log
from imagehost.settings import Settings
from imagehost.storage import image_files
from imagehost.tasks.queue import THUMBNAILS, JobQueue, Run, TaskKind

TASK = "thumbnails"
BATCHES_TABLE = "thumbnail_batches"
BATCH = 200  # images a task looks at
POLL_SECONDS = 0.5
FORGOTTEN_DAYS = 7  # rows of a run whose command died are removed by a later run after this


async def _run_batch(run: Run, *, run_id: str, first_id: int, last_id: int, everything: bool) -> None:
    images: ImageService = run.services["images"]
    looked, made = await images.regenerate_thumbnails(only_missing=not everything, first_id=first_id, last_id=last_id)
    await Image.raw(
        "UPDATE thumbnail_batches SET looked = {}, made = {}, finished_at = now() WHERE run = {} AND first_id = {}",
        looked,
        made,
        run_id,
        first_id,
    )
    action_log().info(
        f"{made} of {looked} images with ids {first_id} to {last_id} got new thumbnails.", action="Thumbnails"
    )


# A batch of images whose thumbnails are made again; any instance's worker runs it.
THUMBNAILS_JOB = TaskKind(name=TASK, run=_run_batch, queue=THUMBNAILS)


@dataclass(frozen=True)
class Outcome:
    batches: int
    failed: int  # batches whose task ended without finishing (every attempt failed; app.log says why)
    looked: int
    made: int


async def regenerate(
    queue: JobQueue, *, everything: bool, batch: int = BATCH, queued: Callable[[int], None] | None = None
) -> Outcome:
    """Queue the batches of one run (then tell `queued` how many) and wait until each has ended,
    whoever ran it."""
    run_id = secrets.token_hex(8)
    await Image.raw(
        "DELETE FROM thumbnail_batches WHERE created_at < now() - make_interval(days => {})", FORGOTTEN_DAYS
    )
    try:
        # The rows first: a task that runs at once finds its row to write its result into.
        ranges = await Image.raw(
            "INSERT INTO thumbnail_batches (run, first_id, last_id)"
            " SELECT {}, min(id), max(id) FROM"
            " (SELECT id, (row_number() OVER (ORDER BY id) - 1) / {} AS part FROM images) AS numbered"
            " GROUP BY part ORDER BY part RETURNING first_id, last_id",
            run_id,
            batch,
        )
        if ranges:
            task_ids = await queue.defer_many(
                TASK, [{"run_id": run_id, "everything": everything, **part} for part in ranges]
            )
            await Image.raw(
                "UPDATE thumbnail_batches b SET task_id = t.task_id"
                " FROM unnest({}::bigint[], {}::bigint[]) AS t(first_id, task_id)"
                " WHERE b.run = {} AND b.first_id = t.first_id",
                [part["first_id"] for part in ranges],
                task_ids,
                run_id,
            )
        if queued is not None:
            queued(len(ranges))
        while True:
            state = await _state(run_id)
            if state["open"] == 0:
                return Outcome(batches=len(ranges), failed=state["lost"], looked=state["looked"], made=state["made"])
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await Image.raw("DELETE FROM thumbnail_batches WHERE run = {}", run_id)


async def _state(run_id: str) -> dict[str, Any]:
    # A batch is lost when its task neither waits nor runs and it wrote no result: its last
    # attempt failed (the queue deletes a task that succeeded, after the task wrote its result).
    rows = await Image.raw(
        "SELECT count(*) FILTER (WHERE b.finished_at IS NULL AND NOT b.lost) AS open,"
        " count(*) FILTER (WHERE b.finished_at IS NULL AND b.lost) AS lost,"
        " coalesce(sum(b.looked), 0) AS looked, coalesce(sum(b.made), 0) AS made"
        " FROM (SELECT finished_at, looked, made, task_id IS NOT NULL AND NOT EXISTS"
        " (SELECT 1 FROM procrastinate_jobs p WHERE p.id = task_id AND p.status IN ('todo', 'doing')) AS lost"
        " FROM thumbnail_batches WHERE run = {}) AS b",
        run_id,
    )
    return {name: int(value) for name, value in rows[0].items()}


async def _command(settings: Settings, *, everything: bool, queue_only: bool, batch: int) -> Outcome:
    makers = "the app instances' workers make them (--queue-only)" if queue_only else "made here and by every instance"

    def announce(batches: int) -> None:
        print(f"{batches} batch(es) of up to {batch} images queued; {makers}.", flush=True)

    queue = JobQueue(settings, [THUMBNAILS_JOB])
    async with connected(settings.database_url, max_connections=4), contextlib.AsyncExitStack() as stack:
        images = None
        if not queue_only:
            workers = await stack.enter_async_context(image_workers(settings))
            store = ImageStore(settings.images_dir)
            store.prepare()
            images = ImageService(settings, store, workers, files=image_files(settings, store))
        await queue.open()
        # Closed first on the way out: a batch running here is cut before its workers stop.
        stack.push_async_callback(queue.close)
        if images is not None:
            queue.start_worker([THUMBNAILS], images.workers.size, {"images": images})
        return await regenerate(queue, everything=everything, batch=batch, queued=announce)


def thumbnails_command(settings: Settings, *, everything: bool, queue_only: bool, batch: int | None = None) -> int:
    """`python -m imagehost thumbnails`: 0 when every batch ended well, 1 when some failed."""
    outcome = asyncio.run(_command(settings, everything=everything, queue_only=queue_only, batch=batch or BATCH))
    print(f"{outcome.made} of {outcome.looked} images got new thumbnails.")
    if outcome.failed:
        print(f"{outcome.failed} of {outcome.batches} batches failed: app.log says why.")
        return 1
    return 0
