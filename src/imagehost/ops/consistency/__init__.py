"""Consistency check and repair: do the rows and the files in IMAGES_DIR (or, with STORAGE=s3, the
objects in the bucket) agree?

The PicHosting design's file-system/database synchronisation, run by `just check`, the operator
page `/ops/check`, `POST /api/sync` and the scheduled scrub (`run_check`). It finds:

- rows whose file is missing (`missing_file`);
- files no row names: originals at the top of IMAGES_DIR (`orphan_file`) and thumbnails whose
  original has no row (`orphan_thumbnail`);
- files whose size, format (from the bytes, JPEG/PNG/GIF parsers only) or SHA-256 disagree with
  their row (`mismatch`), or that cannot be read (`unreadable`);
- thumbnails missing for a THUMBNAIL_SIZES size below the image's long side (`missing_thumbnails`);
- rows marked missing by an earlier repair whose file is back (`file_back`).

Repair moves orphans into IMAGES_DIR/.quarantine/<timestamp>/ (with STORAGE=s3: under the
bucket's `.quarantine/<timestamp>/`; it never deletes a file), remakes missing thumbnails, and marks
(`file_missing_since`) or removes rows whose file is gone. It never touches a file that disagrees
with its row: that file may be the only copy of a damaged image, and its row still links to it; the
operator restores it from a backup or deletes the image.
Every action is logged in app.log as `[..] Check: ...`.

The modules, one job each: `scan` and `bucket_scan` (reading the disk, the bucket), `check` (the
run: rows against files, files against rows), `repair` (what to do) and `repair_places` (doing it
in the folder or the bucket), `report` (findings, the report, the last one kept), `controllers` (HTTP)
and `command` (the command line).
"""

from imagehost.ops.consistency.check import ConsistencyCheck, run_check
from imagehost.ops.consistency.command import command_line
from imagehost.ops.consistency.controllers import ROUTES
from imagehost.ops.consistency.repair import MISSING_ROW_CHOICES
from imagehost.ops.consistency.report import CheckReport, Finding, load_last_report
from imagehost.ops.consistency.scan import RECENT_SECONDS

__all__ = [
    "MISSING_ROW_CHOICES",
    "RECENT_SECONDS",
    "ROUTES",
    "CheckReport",
    "ConsistencyCheck",
    "Finding",
    "command_line",
    "load_last_report",
    "run_check",
]
