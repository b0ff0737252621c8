"""What a scrape reads besides the counters: the database's totals and operations, and the pool.

The totals come from the statistics page's own query (ops/stats.totals: small tables kept by
triggers, no scan of the images; not the page's uploader table or chart), so /metrics and
/ops/stats never disagree.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from imagehost.database import Database
from imagehost.images.service import ImageService
from imagehost.metrics import instruments
from imagehost.ops import state
from imagehost.ops.stats import totals

# A scrape must answer within Prometheus' scrape timeout (10 s by default) even when PostgreSQL hangs.
READINGS_TIMEOUT_SECONDS = 5.0


def _age(operation: state.Outcome | None, now: datetime) -> float | None:
    if operation is None:
        return None
    return max((now - operation.at).total_seconds(), 0.0)


async def read_database(images: ImageService) -> instruments.Readings:
    known = await totals(images)
    now = datetime.now(UTC)
    backup = known.outcomes.get(state.BACKUP)
    check = known.outcomes.get(state.CHECK)
    return instruments.Readings(
        images=known.images,
        stored_bytes=known.total_bytes,
        database_bytes=known.database_bytes,
        disk_free_bytes=known.disk["free"],
        last_backup_age=_age(backup, now),
        last_backup_outcome=backup.outcome if backup else None,
        last_check_age=_age(check, now),
        last_check_outcome=check.outcome if check else None,
    )


async def take_readings(images: ImageService, database: Database) -> None:
    """Set the scrape-time gauges. A database that does not answer makes imagehost_database_up 0
    (the watcher in database.py notices and logs the outage itself); the scrape still answers."""
    pool = database.engine.pool if database.engine is not None else None
    if pool is not None:
        instruments.record_database_pool(size=pool.get_size(), idle=pool.get_idle_size())
    else:
        instruments.record_database_pool(size=0, idle=0)
    try:
        async with asyncio.timeout(READINGS_TIMEOUT_SECONDS):
            readings = await read_database(images)
    except Exception:  # whatever failed (PostgreSQL away, the images folder gone), the scrape answers
        readings = None
    instruments.record_readings(readings)
