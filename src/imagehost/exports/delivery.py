"""Turning rows into bytes on the wire: CSV as it is made; XLSX written in constant memory to a
temporary file (in a worker thread, so the event loop never waits on it), then streamed from it and
removed; an album's ZIP streamed member by member (stream-zip: stored, not deflated, each file read
in chunks after its size and CRC are known, so no file and no archive is ever held in memory).
Each answer holds its export slot (slots.py) until it has ended, however it ends."""

from __future__ import annotations

import shutil
import stat
import tempfile
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from litestar.response import Stream
from litestar.types import Receive, Scope, Send
from stream_zip import NO_COMPRESSION_64, async_stream_zip

from imagehost.exports.slots import ExportSlot
from imagehost.exports.xlsx_writer import Cell, SheetWriter

CHUNK = 64 * 1024
ROWS_PER_WRITE = 500


async def cells_as_text(rows: AsyncIterator[list[Cell]], counted: list[int]) -> AsyncIterator[list[str | int | None]]:
    async for row in rows:
        counted[0] += 1
        yield [cell.value for cell in row]


async def write_xlsx(
    rows: AsyncIterator[list[Cell]],
    make_writer: Callable[[Path], SheetWriter],
    finish: Callable[[SheetWriter], None] | None = None,
) -> tuple[Path, SheetWriter]:
    """The finished workbook's path (inside its own temporary folder) and its writer (rows, pictures).
    `finish` runs after the last row, before the workbook is closed (a note sheet, say)."""
    folder = Path(tempfile.mkdtemp(prefix="imagehost-export-"))
    try:
        writer = await anyio.to_thread.run_sync(make_writer, folder / "export.xlsx")
        batch: list[list[Cell]] = []
        async for row in rows:
            batch.append(row)
            if len(batch) >= ROWS_PER_WRITE:
                await anyio.to_thread.run_sync(writer.write_rows, batch)
                batch = []
        await anyio.to_thread.run_sync(writer.write_rows, batch)
        if finish is not None:
            await anyio.to_thread.run_sync(finish, writer)
        await anyio.to_thread.run_sync(writer.close)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder / "export.xlsx", writer


async def stream_and_remove(path: Path) -> AsyncIterator[bytes]:
    try:
        async with await anyio.open_file(path, "rb") as file:
            while chunk := await file.read(CHUNK):
                yield chunk
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def _size_and_crc(path: Path) -> tuple[int, int]:
    size, crc = 0, 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            size += len(chunk)
            crc = zlib.crc32(chunk, crc)
    return size, crc


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as file:
        while chunk := await file.read(CHUNK):
            yield chunk


async def _these(content: bytes) -> AsyncIterator[bytes]:
    yield content


async def zip_bytes(members: AsyncIterator[tuple[str, Path | bytes, datetime]]) -> AsyncIterator[bytes]:
    """`members`: (name in the archive, a file or the bytes themselves, modified time), read one at a
    time as the ZIP goes out."""

    async def files() -> AsyncIterator[tuple[str, datetime, int, object, AsyncIterator[bytes]]]:
        async for name, source, modified in members:
            if isinstance(source, bytes):
                size, crc, chunks = len(source), zlib.crc32(source), _these(source)
            else:
                size, crc = await anyio.to_thread.run_sync(_size_and_crc, source)
                chunks = _chunks(source)
            yield name, modified, stat.S_IFREG | 0o644, NO_COMPRESSION_64(size, crc), chunks

    async for chunk in async_stream_zip(files()):  # type: ignore[arg-type]
        yield chunk


def header_widths(labels: Sequence[str], wanted: Sequence[float]) -> list[float]:
    return [max(width, len(label) + 2) for label, width in zip(labels, wanted, strict=True)]


class HeldStream(Stream):
    """A streamed download that gives its export slot back when the answer ends: sent in full,
    failed, or cut short by a client that went away. The slot is released by the ASGI call itself,
    not by the iterator's clean-up, which for an abandoned generator waits on the garbage collector."""

    def __init__(self, content: Any, *, slot: ExportSlot, **options: Any) -> None:
        super().__init__(content, **options)
        self.slot = slot

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        answer = super().to_asgi_response(*args, **kwargs)
        slot = self.slot

        async def held(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                await answer(scope, receive, send)
            finally:
                slot.release()

        return held
