"""The object store interface: keys are paths relative to the store's root (a stored name such as
`AbCd...xyz.jpg`, a thumbnail's `thumbs/480/AbCd...xyz.jpg.webp`), values are bytes.

An implementation raises StorageUnavailable (503) when its server cannot be reached, answers with
errors after its retries, or does not answer in time; a missing object is None, never an error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class StoredObject:
    key: str  # relative to the store's root (without S3_PREFIX)
    size: int
    modified: datetime  # timezone-aware


class ObjectStore(Protocol):
    async def put(self, key: str, content: bytes | Path, content_type: str) -> None:
        """Store `content` (bytes, or a file's path) under `key`, replacing what was there; large
        ones in parts."""

    async def get(self, key: str) -> bytes | None:
        """The whole object, or None when there is none."""

    async def stream(self, key: str) -> tuple[StoredObject, AsyncIterator[bytes]] | None:
        """The object's facts and its bytes in chunks, or None when there is none."""

    async def head(self, key: str) -> StoredObject | None:
        """The object's facts, or None when there is none."""

    async def delete(self, key: str) -> None:
        """Remove the object; removing one that is not there is no error."""

    def listing(self, prefix: str = "") -> AsyncIterator[StoredObject]:
        """Every object whose key starts with `prefix`, page by page underneath."""

    async def folders(self, prefix: str) -> list[str]:
        """The "folders" right under `prefix` (a folder, such as `thumbs`): the names between it and
        the next `/` of the keys below it, from one listing by delimiter, without listing the keys."""

    async def copy(self, source: str, target: str) -> None:
        """Copy `source` to `target` within the store (the bytes never pass through us), replacing
        what was there. FileNotFoundError when `source` is not there."""

    async def probe(self) -> str | None:
        """None when the store answers and takes writes; otherwise why not (for /ready)."""
