"""Archives built for real, hostile ones included, by writing zipfile's output and then patching
its headers where no archiver would let us (cp866 names, shared data, lying flags)."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterable

from tests.conftest import png_bytes

CENTRAL = b"PK\x01\x02"
LOCAL = b"PK\x03\x04"


def photo(seed: int = 0, size: tuple[int, int] = (40, 30)) -> bytes:
    """A small PNG, different for every seed."""
    return png_bytes(*size, color=(seed * 37 % 256, seed * 91 % 256, seed * 53 % 256))


def make_zip(entries: Iterable[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


def with_cp866_names(entries: list[tuple[str, bytes]]) -> bytes:
    """What Windows' built-in archiver writes on a Russian system: names in cp866, flag bit 11 off.

    zipfile would write non-ASCII names as UTF-8 with the flag, so each name is written as an ASCII
    placeholder of the same byte length and the bytes are swapped in both headers afterwards."""
    placeholders = []
    for index, (name, _content) in enumerate(entries):
        encoded = name.encode("cp866")
        tag = f"~{index:04d}~".encode()
        placeholder = (tag * (len(encoded) // len(tag) + 1))[: len(encoded)]
        assert len(encoded) >= len(tag), "names long enough to hold a unique placeholder"
        placeholders.append((placeholder, encoded))
    pairs = zip(placeholders, entries, strict=True)
    raw = make_zip((placeholder.decode(), content) for (placeholder, _), (_, content) in pairs)
    for placeholder, encoded in placeholders:
        assert raw.count(placeholder) == 2
        raw = raw.replace(placeholder, encoded)
    return raw


def central_records(raw: bytes) -> list[int]:
    """Offsets of the central directory records, in order."""
    offsets, at = [], raw.find(CENTRAL)
    while at >= 0:
        offsets.append(at)
        at = raw.find(CENTRAL, at + 4)
    return offsets


def overlapping_bomb(content: bytes, copies: int = 3) -> bytes:
    """The non-recursive zip bomb: several directory entries whose data is one and the same."""
    raw = bytearray(make_zip((f"copy{index}.png", content) for index in range(copies)))
    first = central_records(bytes(raw))
    for record in first[1:]:
        struct.pack_into("<L", raw, record + 42, 0)  # every entry's local header: the first one's
    return bytes(raw)


def flag_encrypted(raw: bytes, entry_index: int) -> bytes:
    """Set the 'encrypted' bit of one entry in its directory record and local header."""
    data = bytearray(raw)
    record = central_records(raw)[entry_index]
    (flags,) = struct.unpack_from("<H", data, record + 8)
    struct.pack_into("<H", data, record + 8, flags | 1)
    (local,) = struct.unpack_from("<L", data, record + 42)
    struct.pack_into("<H", data, local + 6, flags | 1)
    return bytes(data)


def lie_about_size(raw: bytes, entry_index: int, declared: int) -> bytes:
    """Make one entry declare a smaller uncompressed size than it really inflates to."""
    data = bytearray(raw)
    record = central_records(raw)[entry_index]
    struct.pack_into("<L", data, record + 24, declared)
    (local,) = struct.unpack_from("<L", data, record + 42)
    struct.pack_into("<L", data, local + 22, declared)
    return bytes(data)


def corrupt_data(raw: bytes, entry_index: int) -> bytes:
    """Overwrite the middle of one entry's compressed bytes."""
    data = bytearray(raw)
    record = central_records(raw)[entry_index]
    (compressed,) = struct.unpack_from("<L", data, record + 20)
    (local,) = struct.unpack_from("<L", data, record + 42)
    name_length, extra_length = struct.unpack_from("<2H", data, local + 26)
    start = local + 30 + name_length + extra_length
    for offset in range(start + compressed // 3, start + 2 * compressed // 3):
        data[offset] ^= 0x5A
    return bytes(data)


def with_symlink(entries: list[tuple[str, bytes]], link_name: str, target: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            archive.writestr(name, content)
        info = zipfile.ZipInfo(link_name)
        info.create_system = 3
        info.external_attr = 0o120777 << 16
        archive.writestr(info, target)
    return buffer.getvalue()
