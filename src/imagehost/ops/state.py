"""The last outcome of each operation, kept in the operations_state table (ops/tables.py).

Written by whoever runs the operation: a backup (`just backup`, the scheduler), a check (`just
check`, the scheduler's scrub, `POST /api/sync`, the operator page) and a restore. Written through
its own short connection, since backups and restores run outside the app, where no Piccolo engine
is bound; read by the statistics page through the table. Failing to record never fails the
operation itself: it is logged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg

from imagehost.logging import action_log

BACKUP, CHECK, RESTORE = "backup", "check", "restore"
OK, WARNINGS, PROBLEMS, FAILED = "ok", "warnings", "problems", "failed"


@dataclass(frozen=True)
class Outcome:
    kind: str
    at: dt.datetime
    outcome: str
    detail: str

    def line(self) -> str:
        """How the statistics page shows it: when (UTC), how it went, what it said."""
        when = self.at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{when}: {self.detail}" if self.outcome == OK else f"{when} ({self.outcome}): {self.detail}"

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "outcome": self.outcome, "detail": self.detail}


_UPSERT = (
    "INSERT INTO operations_state (kind, at, outcome, detail) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (kind) DO UPDATE SET at = EXCLUDED.at, outcome = EXCLUDED.outcome, detail = EXCLUDED.detail"
)


async def record(database_url: str, kind: str, outcome: str, detail: str, *, at: dt.datetime | None = None) -> None:
    """Replace the last outcome of `kind`. Never raises: a backup that worked stays a backup that worked."""
    try:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(_UPSERT, kind, at or dt.datetime.now(dt.UTC), outcome, detail)
        finally:
            await connection.close()
    except (OSError, asyncpg.PostgresError) as error:
        action_log().warning(
            f"the {kind}'s outcome could not be recorded: {type(error).__name__}: {error}", action="Operations"
        )


async def read_all(database_url: str) -> list[Outcome]:
    """Every recorded outcome (none when the table does not exist yet)."""
    connection = await asyncpg.connect(database_url)
    try:
        if not await connection.fetchval("SELECT to_regclass('public.operations_state') IS NOT NULL"):
            return []
        rows = await connection.fetch("SELECT kind, at, outcome, detail FROM operations_state")
    finally:
        await connection.close()
    return [Outcome(row["kind"], row["at"], row["outcome"], row["detail"]) for row in rows]


async def put_back(database_url: str, outcomes: list[Outcome]) -> None:
    """After a restore: this installation's history is not the backup's. The newer of each kind stays."""
    if not outcomes:
        return
    try:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.executemany(
                f"{_UPSERT} WHERE operations_state.at < EXCLUDED.at",
                [(outcome.kind, outcome.at, outcome.outcome, outcome.detail) for outcome in outcomes],
            )
        finally:
            await connection.close()
    except (OSError, asyncpg.PostgresError) as error:
        action_log().warning(
            f"the last operations could not be kept across the restore: {type(error).__name__}: {error}",
            action="Operations",
        )


async def last_outcomes() -> dict[str, Outcome]:
    """By kind, for the app (through the table bound to its pool)."""
    from imagehost.ops.tables import OperationState

    rows = await OperationState.select()
    return {row["kind"]: Outcome(row["kind"], row["at"], row["outcome"], row["detail"]) for row in rows}
