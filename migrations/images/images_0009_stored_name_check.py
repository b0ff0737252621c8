"""A CHECK constraint on images.stored_name: the database holds only names the store would make.

The app opens files through ImageStore.path_of, which refuses anything else; this keeps such rows
out in the first place (a forged restore, someone with database access). The pattern is frozen
here as it was when written; tests/ops/test_stored_names.py holds it equal to storage.STORED_NAME,
so that a new format needs a new migration. PostgreSQL's `$` in an ARE matches only at the very
end (no trailing newline).

Rows that already break it do not stop the migration, and the app's start: the constraint is then
added NOT VALID (it holds for every new and changed row at once), the rows are named on stderr,
and `just check` reports them ("row with an invalid stored name"); `just check --repair
--missing-rows=remove` removes them and then validates the constraint.
"""

import sys

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-01T23:05:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "images.stored_name must be a stored name (CHECK images_stored_name_pattern)."

CONSTRAINT = "images_stored_name_pattern"
# Braces doubled for Piccolo's query template: the SQL reads {16,64}.
PATTERN = r"^[A-Za-z0-9_-]{{16,64}}\.(jpg|png|gif)$"


class RawSQL(Table):
    pass


async def add_check():
    # PATTERN is this migration's own constant, never input.
    bad = await RawSQL.raw(f"SELECT id, stored_name FROM images WHERE stored_name !~ '{PATTERN}' ORDER BY id")  # noqa: S608
    validity = ""
    if bad:
        validity = " NOT VALID"
        shown = ", ".join(f"#{row['id']} {row['stored_name']!r}" for row in bad[:20])
        more = f" and {len(bad) - 20} more" if len(bad) > 20 else ""
        print(
            f"WARNING: {len(bad)} rows of images hold a stored name that is not one ({shown}{more}). "
            f"{CONSTRAINT} is added NOT VALID: it refuses new such rows; these are never opened, and "
            "`just check` reports them (`just check --repair --missing-rows=remove` removes them).",
            file=sys.stderr,
        )
    await RawSQL.raw(f"ALTER TABLE images ADD CONSTRAINT {CONSTRAINT} CHECK (stored_name ~ '{PATTERN}'){validity}")


async def drop_check():
    await RawSQL.raw(f"ALTER TABLE images DROP CONSTRAINT IF EXISTS {CONSTRAINT}")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="images", description=DESCRIPTION)
    manager.add_raw(add_check)
    manager.add_raw_backwards(drop_check)
    return manager
