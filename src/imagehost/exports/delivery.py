"""Turning rows into bytes on the wire: CSV as it is made; XLSX written in constant memory to a
temporary file (in a worker thread, so the event loop never waits on it), then streamed from it and
removed; an album's ZIP streamed member by member (stream-zip: stored, not deflated, each file read
in chunks after its size and CRC are known, so no file and no archive is ever held in memory)."""

from __future__ import annotations

import shutil
import stat
import tempfile
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from pathlib import Path

import anyio
import anyio.to_thread
from stream_zip import NO_COMPRESSION_64, async_stream_zip

from imagehost.exports.xlsx_writer import Cell, SheetWriter

CHUNK = 64 * 1024
ROWS_PER_WRITE = 500


async def cells_as_text(rows: AsyncIterator[list[Cell]], counted: list[int]) -> AsyncIterator[list[str | int | None]]:
    async for row in rows:
        counted[0] += 1
        yield [cell.value for cell in row]


async def write_xlsx(rows: AsyncIterator[list[Cell]], make_writer: Callable[[Path], SheetWriter]) -> tuple[Path, int]:
    """The finished workbook's path (inside its own temporary folder) and its number of rows."""
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
        await anyio.to_thread.run_sync(writer.close)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder / "export.xlsx", writer.rows


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


async def zip_bytes(members: AsyncIterator[tuple[str, Path, datetime]]) -> AsyncIterator[bytes]:
    """`members`: (name in the archive, file, modified time), read one at a time as the ZIP goes out."""

    async def files() -> AsyncIterator[tuple[str, datetime, int, object, AsyncIterator[bytes]]]:
        async for name, path, modified in members:
            size, crc = await anyio.to_thread.run_sync(_size_and_crc, path)
            yield name, modified, stat.S_IFREG | 0o644, NO_COMPRESSION_64(size, crc), _chunks(path)

    async for chunk in async_stream_zip(files()):  # type: ignore[arg-type]
        yield chunk


def header_widths(labels: Sequence[str], wanted: Sequence[float]) -> list[float]:
    return [max(width, len(label) + 2) for label, width in zip(labels, wanted, strict=True)]
