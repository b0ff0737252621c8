"""The command line: `python -m imagehost check [--repair] [--missing-rows mark|remove]`."""

from __future__ import annotations

import asyncio

from imagehost.ops.consistency.check import run_check
from imagehost.settings import Settings


def command_line(settings: Settings, *, repair: bool, missing_rows: str | None) -> int:
    """Print each finding as it is made, then the summary; 0 when consistent (after a repair:
    when everything found was fixed), 1 otherwise. The log lines go to app.log only, so that
    stdout carries the report."""
    import logging
    import sys

    from imagehost.logging import LOGGER_NAME

    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is sys.stdout:
            logger.removeHandler(handler)
    choice = (missing_rows or "mark") if repair else None
    print(
        f"Checking {settings.images_dir} against the database"
        + (f", repairing (rows whose file is gone: {choice})" if choice else "")
        + " ...",
        flush=True,
    )
    report = asyncio.run(
        run_check(settings, choice, by="the command line", on_finding=lambda f: print(f"  {f.describe()}", flush=True))
    )
    print("\n".join(report.closing_lines()))
    return report.exit_code
