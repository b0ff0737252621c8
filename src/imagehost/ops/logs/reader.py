"""Reading app.log backwards, newest line first, across its rotated files (app.log, app.log.1, ...),
a block at a time: a page of the log never loads a whole file, and a search stops as soon as the
lines are older than its `from` date (each file's lines are in time order)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

LINE = re.compile(r"^\[(?P<time>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\] (?P<action>[^:\s]+): (?P<message>.*)$")
PAGE_SIZE = 50
BLOCK = 64 * 1024


@dataclass(frozen=True)
class LogEntry:
    time: str  # YYYY-MM-DD HH:MM:SS, as written
    action: str
    message: str

    @property
    def day(self) -> str:
        return self.time[:10]


@dataclass(frozen=True)
class LogFilter:
    action: str | None = None  # exact, case-insensitive: Success, Error, Backup, ...
    who: str | None = None  # a person named in the line ("by vera", "vera's token")
    text: str | None = None  # anywhere in the line, case-insensitive
    since: date | None = None  # inclusive
    until: date | None = None  # inclusive

    def matches(self, entry: LogEntry) -> bool:
        if self.action and entry.action.lower() != self.action.lower():
            return False
        if self.since and entry.day < self.since.isoformat():
            return False
        if self.until and entry.day > self.until.isoformat():
            return False
        message = entry.message.lower()
        if self.who and not re.search(rf"(?<!\w){re.escape(self.who.lower())}(?!\w)", message):
            return False
        return not self.text or self.text.lower() in f"{entry.action}: {entry.message}".lower()


@dataclass(frozen=True)
class LogPage:
    entries: list[LogEntry]
    page: int
    has_next: bool


def log_files(log_dir: Path, name: str = "app.log") -> list[Path]:
    """app.log (or this instance's, Settings.log_file_name), then app.log.1, app.log.2, ... as long
    as they exist: newest first."""
    files = [log_dir / name]
    number = 1
    while (log_dir / f"{name}.{number}").exists():
        files.append(log_dir / f"{name}.{number}")
        number += 1
    return [path for path in files if path.exists()]


def lines_backwards(path: Path, block: int = BLOCK) -> Iterator[str]:
    """The file's lines, last first, read a block at a time from the end."""
    with path.open("rb") as file:
        file.seek(0, 2)
        position = file.tell()
        rest = b""
        while position > 0:
            step = min(block, position)
            position -= step
            file.seek(position)
            chunk = file.read(step) + rest
            lines = chunk.split(b"\n")
            rest = lines[0]  # may continue in the block before
            for line in reversed(lines[1:]):
                if line:
                    yield line.decode("utf-8", errors="replace")
        if rest:
            yield rest.decode("utf-8", errors="replace")


def entries_backwards(log_dir: Path, name: str = "app.log") -> Iterator[LogEntry]:
    for path in log_files(log_dir, name):
        for line in lines_backwards(path):
            match = LINE.match(line)
            if match:
                yield LogEntry(match["time"], match["action"], match["message"])


def read_page(log_dir: Path, wanted: LogFilter, page: int, size: int = PAGE_SIZE, name: str = "app.log") -> LogPage:
    """One page of the matching entries, newest first; blocking (run it in a thread)."""
    skip = (page - 1) * size
    found: list[LogEntry] = []
    for entry in entries_backwards(log_dir, name):
        if wanted.since and entry.day < wanted.since.isoformat():
            break  # older still from here on
        if not wanted.matches(entry):
            continue
        if skip:
            skip -= 1
            continue
        if len(found) == size:
            return LogPage(found, page, has_next=True)
        found.append(entry)
    return LogPage(found, page, has_next=False)
