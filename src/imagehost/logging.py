"""The action log: one `[YYYY-MM-DD HH:MM:SS] Action: message` line per event, in app.log and on stdout."""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import unicodedata
from itertools import islice
from pathlib import Path
from typing import Any

import structlog

LOGGER_NAME = "imagehost"
_ACTION_BY_LEVEL = {"debug": "Debug", "info": "Info", "warning": "Warning", "error": "Error", "critical": "Error"}
# Every action a line can carry: the features' own (action="...") and the levels' defaults. The admin
# log viewer offers them (ops/logs); tests/test_logging.py checks that the code writes no other.
ACTIONS = (
    *("Success", "Error", "Refused", "Login", "Logout", "Token", "Backup", "Restore", "Check", "Scrub"),
    *("Schedule", "Thumbnails", "Operations", "Database", "Storage", "Workers", "Jobs", "Info", "Warning", "Debug"),
)


def one_line(text: object) -> str:
    """Escape control and line-breaking characters so user text can neither break a line nor forge one."""
    out = []
    for char in str(text):
        if char == "\\":
            out.append("\\\\")
        elif unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"}:
            out.append(char.encode("unicode_escape").decode("ascii") if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
        else:
            out.append(char)
    return "".join(out)


def render_action_line(_logger: Any, method_name: str, event_dict: dict[str, Any]) -> str:
    action = event_dict.pop("action", None) or _ACTION_BY_LEVEL.get(method_name, "Info")
    timestamp = event_dict.pop("timestamp")
    message = one_line(event_dict.pop("event", ""))
    exc = event_dict.pop("exc_info", None)
    if exc:
        message += f" [{one_line(repr(exc if isinstance(exc, BaseException) else sys.exc_info()[1]))}]"
    return f"[{timestamp}] {one_line(action)}: {message}"


class SharedRotatingFileHandler(logging.Handler):
    """app.log written by several processes at once (uvicorn workers, the operator commands), rotated
    past `max_bytes` into app.log.1 ... app.log.<backups> (0 for either: never rotate / keep none).

    logging's RotatingFileHandler is safe in one process only: each worker keeps its own descriptor
    and its own idea of the size, so after one worker rotates the others go on writing into
    app.log.1 and then rotate again themselves, and lines end up in the wrong file or are dropped
    with the oldest one. Here every line is written under an exclusive flock on app.log.lock: the
    holder reopens app.log if another process has rotated it (its inode changed; this also follows
    an outside logrotate), rotates if the line would take the file past the limit, and writes the
    line with a single write() to an O_APPEND descriptor, so lines are never split or interleaved.
    flock is advisory and local to one host: right for the workers of one machine or container,
    not for a log folder shared over NFS.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        super().__init__()
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock_descriptor: int | None = None
        self._descriptor: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8")
            if self._lock_descriptor is None:  # the first line, or one after close(): reopen, as FileHandler does
                lock_path = self.path.with_name(self.path.name + ".lock")
                self._lock_descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._lock_descriptor, fcntl.LOCK_EX)
            try:
                descriptor = self._current()
                size = os.fstat(descriptor).st_size
                if self.max_bytes and size and size + len(line) > self.max_bytes:
                    self._rotate()
                    descriptor = self._current()
                os.write(descriptor, line)
            finally:
                fcntl.flock(self._lock_descriptor, fcntl.LOCK_UN)
        except Exception:
            self.handleError(record)

    def _current(self) -> int:
        """Our descriptor of app.log, reopened when the file at the path is no longer the one we hold."""
        if self._descriptor is not None:
            try:
                on_disk = os.stat(self.path)
                held = os.fstat(self._descriptor)
                if (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino):
                    return self._descriptor
            except FileNotFoundError:
                pass
            os.close(self._descriptor)
        self._descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self._descriptor

    def _rotate(self) -> None:
        if self.backups == 0:
            os.unlink(self.path)
            return
        for number in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{number + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            for descriptor in (self._descriptor, self._lock_descriptor):
                if descriptor is not None:
                    os.close(descriptor)
            self._descriptor = self._lock_descriptor = None
        super().close()


def configure_logging(
    log_dir: Path, max_bytes: int = 1024 * 1024, backups: int = 5, file_name: str = "app.log"
) -> None:
    """Send the action log to LOG_DIR/`file_name` (Settings.log_file_name) and stdout. Safe to call
    again (tests build many apps)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stdlib_logger = logging.getLogger(LOGGER_NAME)
    for handler in list(stdlib_logger.handlers):
        stdlib_logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter("%(message)s")
    file_handler = SharedRotatingFileHandler(log_dir / file_name, max_bytes, backups)
    stream_handler = logging.StreamHandler(sys.stdout)
    for handler in (file_handler, stream_handler):
        handler.setFormatter(formatter)
        stdlib_logger.addHandler(handler)
    stdlib_logger.setLevel(logging.INFO)
    stdlib_logger.propagate = False
    structlog.configure(
        processors=[
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
            render_action_line,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def action_log() -> Any:
    return structlog.get_logger(LOGGER_NAME)


def tail_lines(path: Path, limit: int) -> list[str]:
    """The last `limit` lines of a file, read backwards block by block: never the whole file."""
    from imagehost.ops.logs.reader import lines_backwards  # the one backwards reader (a module with no app imports)

    if limit <= 0 or not path.exists():
        return []
    return list(islice(lines_backwards(path), limit))[::-1]
