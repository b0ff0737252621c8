"""The action log: one `[YYYY-MM-DD HH:MM:SS] Action: message` line per event, in app.log and on stdout."""

from __future__ import annotations

import logging
import logging.handlers
import sys
import unicodedata
from pathlib import Path
from typing import Any

import structlog

LOGGER_NAME = "imagehost"
_ACTION_BY_LEVEL = {"debug": "Debug", "info": "Info", "warning": "Warning", "error": "Error", "critical": "Error"}


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


def configure_logging(log_dir: Path) -> None:
    """Send the action log to LOG_DIR/app.log and stdout. Safe to call again (tests build many apps)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stdlib_logger = logging.getLogger(LOGGER_NAME)
    for handler in list(stdlib_logger.handlers):
        stdlib_logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter("%(message)s")
    # WatchedFileHandler reopens app.log when an outside tool (logrotate) moves it away.
    file_handler = logging.handlers.WatchedFileHandler(log_dir / "app.log", encoding="utf-8")
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


def tail_lines(path: Path, limit: int, block_size: int = 64 * 1024) -> list[str]:
    """The last `limit` lines of a file, read backwards block by block: never the whole file."""
    if limit <= 0 or not path.exists():
        return []
    with path.open("rb") as file:
        file.seek(0, 2)
        position = file.tell()
        chunks: list[bytes] = []
        newlines = 0
        while position > 0 and newlines <= limit:
            step = min(block_size, position)
            position -= step
            file.seek(position)
            chunk = file.read(step)
            chunks.append(chunk)
            newlines += chunk.count(b"\n")
    text = b"".join(reversed(chunks)).decode("utf-8", errors="replace")
    return text.splitlines()[-limit:]
