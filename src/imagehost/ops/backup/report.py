"""What a backup holds and what a restore did, in the operator's words."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagehost.ops.backup.make import BackupResult


def describe_rows(rows: dict[str, int]) -> str:
    """The rows people care about (the manifest counts every table, summary tables included)."""
    images, tokens = rows.get("images", 0), rows.get("api_tokens", 0)
    return f"{images} image{'' if images == 1 else 's'}, {tokens} API token{'' if tokens == 1 else 's'}"


def describe_backup(result: BackupResult) -> str:
    text = (
        f"{describe_rows(result.rows)}, {result.files} files ({human_bytes(result.file_bytes)}); "
        f"archive {human_bytes(result.archive_bytes)} in {result.seconds:.1f} s"
    )
    if result.deleted_during_backup or result.missing_files:
        text += f"; {len(result.deleted_during_backup) + len(result.missing_files)} rows without their file"
    if result.changed_files:
        text += f"; {len(result.changed_files)} files differ from their rows"
    if result.pruned:
        text += f"; pruned {len(result.pruned)} old: {', '.join(path.name for path in result.pruned)}"
    return text


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


@dataclass
class RestoreReport:
    backup: str
    rows: dict[str, int]
    restored: list[str] = field(default_factory=list)  # files that were missing and are back
    replaced: list[str] = field(default_factory=list)  # files that differed: the old one is in quarantine
    unchanged: int = 0
    quarantined: list[str] = field(default_factory=list)  # files not in the backup, moved aside
    quarantine: Path | None = None
    rows_dropped: list[str] = field(default_factory=list)  # deleted while the backup ran
    problems: list[str] = field(default_factory=list)  # what the final verification found wrong
    warnings: list[str] = field(default_factory=list)  # known gaps the backup itself recorded
    files_without_row: int = 0
    seconds: float = 0.0
    signature: str = ""  # whether the backup was made here (signing.describe)
    into: str = ""  # STORAGE=s3: the bucket the files were put into (it held no images)

    def lines(self) -> list[str]:
        out = [
            f"Restored {self.backup} in {self.seconds:.1f} s.",
            f"  database: replaced by the backup's ({describe_rows(self.rows)})",
            f"  files: {self.unchanged} already right, {len(self.restored)} put back, "
            f"{len(self.replaced)} replaced (they differed from the backup)"
            if not self.into
            else f"  files: {len(self.restored)} put into {self.into}",
        ]
        if self.signature:
            out.append(f"  signature: {self.signature}")
        if self.quarantined or self.replaced:
            out.append(
                f"  quarantine: {self.quarantine}: {len(self.quarantined)} files not in the backup, "
                f"{len(self.replaced)} old versions of replaced files (nothing was deleted)"
            )
        if self.rows_dropped:
            out.append(f"  {len(self.rows_dropped)} rows dropped: their images were deleted while the backup ran")
        if self.files_without_row:
            out.append(
                f"  {self.files_without_row} original files have no row "
                "(uploads that finished while the backup ran, or orphans: see `just check`)"
            )
        out.extend(f"  warning: {warning}" for warning in self.warnings)
        if self.problems:
            out.append(f"  VERIFICATION FAILED ({len(self.problems)} problems):")
            out.extend(f"    {problem}" for problem in self.problems[:50])
        else:
            out.append("  verified: every file matches the manifest, every row has its file")
        return out
