"""uvicorn's access log without delete keys: `?key=...` never reaches a log file or stdout.

Installed by deploy/uvicorn-logging.json (`uvicorn --log-config ...`, in the Dockerfile, `just run`
and the live tests); nginx.conf applies the same rule to nginx's own access log.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

REDACTED = "[redacted]"
SECRET_PARAMETERS = frozenset({"key"})


def without_secrets(path_with_query: str) -> str:
    """The path as sent, its query replaced by "[redacted]" when a parameter named `key` is in it."""
    path, separator, query = path_with_query.partition("?")
    if not separator:
        return path_with_query
    names = {name.strip().lower() for name, _ in parse_qsl(query, keep_blank_values=True)}
    names |= {part.partition("=")[0].strip().lower() for part in query.replace(";", "&").split("&")}
    return f"{path}?{REDACTED}" if names & SECRET_PARAMETERS else path_with_query


class WithoutDeleteKeys(logging.Filter):
    """For uvicorn.access, whose records carry (client, method, path with query, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], without_secrets(args[2]), *args[3:])
        return True
