"""Operator commands: `python -m imagehost thumbnails [--all]` (also `just thumbnails`)."""

from __future__ import annotations

import argparse
import asyncio

from imagehost.database import connected
from imagehost.images.service import ImageService
from imagehost.images.storage import ImageStore
from imagehost.images.workers import WorkerPool
from imagehost.logging import configure_logging
from imagehost.settings import Settings


async def regenerate_thumbnails(settings: Settings, *, everything: bool) -> tuple[int, int]:
    store = ImageStore(settings.images_dir)
    store.prepare()
    pool = WorkerPool(
        max(1, settings.worker_processes), settings.worker_memory_limit_bytes, settings.worker_time_limit_seconds
    )
    async with connected(settings.database_url, max_connections=2):
        await pool.start()
        try:
            return await ImageService(settings, store, pool).regenerate_thumbnails(only_missing=not everything)
        finally:
            await pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagehost", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    thumbnails = commands.add_parser("thumbnails", help="make missing thumbnails (after a restore or a new size)")
    thumbnails.add_argument("--all", action="store_true", help="remake every thumbnail, not only missing ones")
    arguments = parser.parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_dir)
    if arguments.command == "thumbnails":
        looked, made = asyncio.run(regenerate_thumbnails(settings, everything=arguments.all))
        print(f"{made} of {looked} images got new thumbnails.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
