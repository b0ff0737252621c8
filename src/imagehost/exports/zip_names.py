"""Member names for an album's ZIP. Album names, article codes and original names are user content:
each becomes one safe path component (no separators, no `..`, no control characters, no names
Windows reserves, bounded length), and repeats within a folder are numbered."""

from __future__ import annotations

import re
import unicodedata

MAX_COMPONENT_CHARACTERS = 100
MAX_COMPONENT_BYTES = 200  # most file systems allow 255 bytes per name
_FORBIDDEN = set('<>:"/\\|?*')
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$", re.IGNORECASE)


def safe_component(name: str, fallback: str) -> str:
    text = "".join(
        "_" if char in _FORBIDDEN or unicodedata.category(char) in {"Cc", "Cf", "Cs", "Zl", "Zp"} else char
        for char in unicodedata.normalize("NFC", name)
    )
    text = text.strip().strip(".").strip()  # Windows drops trailing dots and spaces; `..` goes
    if not text:
        text = fallback
    if _RESERVED.match(text):
        text = "_" + text
    return _bounded(text)


def _bounded(text: str) -> str:
    """At most MAX_COMPONENT_CHARACTERS and MAX_COMPONENT_BYTES, the extension kept."""
    stem, dot, extension = text.rpartition(".")
    if not dot or not stem or len(extension) > 10:
        stem, dot, extension = text, "", ""
    suffix = dot + extension
    while len(stem) + len(suffix) > MAX_COMPONENT_CHARACTERS or len((stem + suffix).encode()) > MAX_COMPONENT_BYTES:
        stem = stem[:-1]
    return stem.rstrip(". ") + suffix if stem.rstrip(". ") else "_" + suffix


class FolderNames:
    """Unique names within one folder, compared as Windows and macOS do (case-insensitively)."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def unique(self, name: str) -> str:
        candidate, number = name, 1
        while candidate.casefold() in self.taken:
            number += 1
            stem, dot, extension = name.rpartition(".")
            stem, suffix = (stem, dot + extension) if dot and stem else (name, "")
            candidate = (
                _bounded(f"{stem} ({number}){suffix}")
                if len(name) < MAX_COMPONENT_CHARACTERS - 8
                else (_bounded(f"{stem[: MAX_COMPONENT_CHARACTERS - 10]} ({number}){suffix}"))
            )
        self.taken.add(candidate.casefold())
        return candidate
