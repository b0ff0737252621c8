"""What a check found and did: findings, the report (its summary, lines and JSON), and the last one
kept for the operator page."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from imagehost.errors import N_
from imagehost.images.storage import THUMBS
from imagehost.ops.consistency.scan import RECENT_SECONDS
from imagehost.settings import Settings

LISTED_FINDINGS = 1000  # kept in the report (counts stay exact); the rest are only counted
LAST_REPORT = "last-check.json"

PROBLEMS = {
    "missing_file": N_("Row without its file"),
    "orphan_file": N_("File without a row"),
    "orphan_thumbnail": N_("Thumbnail without a row"),
    "mismatch": N_("File disagrees with its row"),
    "unreadable": N_("File cannot be read"),
    "missing_thumbnails": N_("Missing thumbnails"),
    "file_back": N_("Marked missing, but the file is back"),
    "bad_name": N_("Row with an invalid stored name"),
}
# Known and acknowledged: rows an earlier repair marked, whose file is still gone. Not a problem.
NOTES = {"marked_missing": N_("Marked missing earlier")}
KINDS = {**PROBLEMS, **NOTES}
ACTIONS = {
    "quarantined": N_("moved to quarantine"),
    "regenerated": N_("thumbnails made"),
    "marked": N_("row marked missing"),
    "removed": N_("row removed"),
    "unmarked": N_("mark cleared"),
    "left": N_("left untouched"),
    "failed": N_("repair failed"),
}
FIELDS = {"size": N_("size"), "format": N_("format"), "sha256": "SHA-256"}


@dataclass
class Finding:
    kind: str
    stored_name: str
    image_id: int | None = None
    # mismatch: field -> (what the row says, what the file is)
    disagrees: dict[str, tuple[str, str]] = field(default_factory=dict)
    sizes: tuple[int, ...] = ()  # missing_thumbnails: the sizes; orphan_thumbnail: its size
    since: str = ""  # marked_missing, file_back: when the row was marked
    error: str = ""  # unreadable, failed repairs: why
    action: str = ""  # what repair did (a key of ACTIONS); empty without repair
    moved_to: str = ""  # quarantined: where, relative to IMAGES_DIR

    @property
    def problem(self) -> bool:
        return self.kind in PROBLEMS

    @property
    def fixed(self) -> bool:
        return self.action in {"quarantined", "regenerated", "marked", "removed", "unmarked"}

    def describe(self) -> str:
        """One English line, for the command line and app.log."""
        who = f"#{self.image_id} {self.stored_name}" if self.image_id is not None else self.stored_name
        text = f"{KINDS[self.kind].lower()}: {who}"
        if self.kind == "orphan_thumbnail":
            text = f"{KINDS[self.kind].lower()}: {THUMBS}/{self.sizes[0]}/{self.stored_name}.webp"
        if self.disagrees:
            text += (
                " ("
                + "; ".join(f"{name} {row} in the row, {disk} on disk" for name, (row, disk) in self.disagrees.items())
                + ")"
            )
        if self.kind == "missing_thumbnails":
            text += f" ({', '.join(map(str, self.sizes))})"
        if self.since:
            text += f" (marked {self.since})"
        if self.error and not self.action:
            text += f" ({self.error})"
        if self.action:
            text += f" -> {ACTIONS[self.action]}"
            text += f" {self.moved_to}" if self.moved_to else ""
            text += f" ({self.error})" if self.error else ""
        return text


@dataclass
class CheckReport:
    started_at: str
    repair: str | None = None  # None: check only; else what was done to rows whose file is gone
    by: str = ""
    duration_seconds: float = 0.0
    rows: int = 0
    files: int = 0  # originals on disk
    thumbnails: int = 0  # thumbnails on disk
    bytes_hashed: int = 0
    skipped_recent: int = 0  # files without a row, too new to call orphans (an upload may be committing)
    counts: dict[str, int] = field(default_factory=dict)  # kind -> found
    fixed_counts: dict[str, int] = field(default_factory=dict)  # kind -> fixed by repair
    findings: list[Finding] = field(default_factory=list)  # the first LISTED_FINDINGS
    quarantine: str = ""  # relative to IMAGES_DIR, when repair moved anything there

    @property
    def problems(self) -> int:
        return sum(count for kind, count in self.counts.items() if kind in PROBLEMS)

    @property
    def fixed(self) -> int:
        return sum(self.fixed_counts.values())

    @property
    def unfixed(self) -> int:
        return self.problems - self.fixed

    @property
    def consistent(self) -> bool:
        """Nothing left to fix (after a repair: everything it found was fixed)."""
        return self.unfixed == 0

    @property
    def exit_code(self) -> int:
        return 0 if self.consistent else 1

    @property
    def listed_all(self) -> bool:
        return len(self.findings) == sum(self.counts.values())

    def add(self, finding: Finding) -> None:
        self.counts[finding.kind] = self.counts.get(finding.kind, 0) + 1
        if len(self.findings) < LISTED_FINDINGS:
            self.findings.append(finding)

    def fixed_one(self, finding: Finding) -> None:
        if finding.problem and finding.fixed:
            self.fixed_counts[finding.kind] = self.fixed_counts.get(finding.kind, 0) + 1

    def summary(self) -> str:
        """One line: what was checked, and what was found (and fixed)."""
        checked = (
            f"{self.rows:,} images, {self.files:,} files and {self.thumbnails:,} thumbnails checked"
            f" in {round(self.duration_seconds, 3):.1f} s"  # as as_json keeps it: a reloaded report reads the same
        )
        if not self.problems:
            marked = self.counts.get("marked_missing", 0)
            return f"{checked}: consistent" + (f" ({marked:,} rows marked missing earlier)." if marked else ".")
        found = ", ".join(
            f"{PROBLEMS[kind].lower()}: {self.counts[kind]:,}" for kind in PROBLEMS if self.counts.get(kind)
        )
        text = f"{checked}: {self.problems:,} problems ({found})"
        if self.repair:
            text += f"; {self.fixed:,} fixed, {self.unfixed:,} left"
            if self.quarantine:
                text += f"; orphans moved to {self.quarantine}"
        return text + "."

    def details(self) -> str:
        """Every listed finding on its own line, then the closing lines."""
        lines = [f"  {finding.describe()}" for finding in self.findings]
        if not self.listed_all:
            lines.append(f"  ... and {sum(self.counts.values()) - len(self.findings):,} more not listed")
        return "\n".join([*lines, *self.closing_lines()])

    def closing_lines(self) -> list[str]:
        """What was read, what was left for later, and the summary."""
        lines = []
        if self.bytes_hashed:
            lines.append(f"{self.bytes_hashed / 1e6:,.1f} MB read and hashed.")
        if self.skipped_recent:
            lines.append(
                f"{self.skipped_recent:,} files without a row are younger than {RECENT_SECONDS} s"
                " (uploads in progress?): left for the next check."
            )
        return [*lines, self.summary()]

    def as_json(self) -> dict[str, Any]:
        return {
            "consistent": self.consistent,
            "started_at": self.started_at,
            "duration_seconds": round(self.duration_seconds, 3),
            "repair": self.repair,
            "by": self.by,
            "checked": {
                "rows": self.rows,
                "files": self.files,
                "thumbnails": self.thumbnails,
                "bytes_hashed": self.bytes_hashed,
                "skipped_recent": self.skipped_recent,
            },
            "problems": self.problems,
            "fixed": self.fixed,
            "unfixed": self.unfixed,
            "counts": self.counts,
            "fixed_counts": self.fixed_counts,
            "quarantine": self.quarantine or None,
            "findings": [_finding_json(finding) for finding in self.findings],
            "findings_listed_all": self.listed_all,
            "summary": self.summary(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckReport:
        checked = data.get("checked", {})
        return cls(
            started_at=data["started_at"],
            repair=data.get("repair"),
            by=data.get("by", ""),
            duration_seconds=data.get("duration_seconds", 0.0),
            rows=checked.get("rows", 0),
            files=checked.get("files", 0),
            thumbnails=checked.get("thumbnails", 0),
            bytes_hashed=checked.get("bytes_hashed", 0),
            skipped_recent=checked.get("skipped_recent", 0),
            counts=dict(data.get("counts", {})),
            fixed_counts=dict(data.get("fixed_counts", {})),
            quarantine=data.get("quarantine") or "",
            findings=[
                Finding(
                    **{
                        **item,
                        "disagrees": {name: tuple(pair) for name, pair in item.get("disagrees", {}).items()},
                        "sizes": tuple(item.get("sizes", ())),
                    }
                )
                for item in data.get("findings", [])
            ],
        )


def _finding_json(finding: Finding) -> dict[str, Any]:
    return {key: value for key, value in asdict(finding).items() if value not in ("", (), {}, None)} | {
        "kind": finding.kind,
        "stored_name": finding.stored_name,
    }


def save_report(settings: Settings, report: CheckReport) -> None:
    path = settings.log_dir / LAST_REPORT
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    temporary.write_text(json.dumps(report.as_json(), ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)


def load_last_report(settings: Settings) -> CheckReport | None:
    """The report of the last check run by anyone (app, command line, scheduler), or None."""
    path = settings.log_dir / LAST_REPORT
    try:
        return CheckReport.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return None  # a report from an older version: the next check writes a new one
