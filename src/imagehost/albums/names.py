"""The one rule for album names and article codes, used by uploads, the API and every query."""

from __future__ import annotations

import re
import unicodedata

from imagehost.albums.tables import MAX_NAME_LENGTH
from imagehost.errors import InvalidName

# Text direction overrides and isolates: they make a name display as something it is not.
_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def catalogue_name(value: str | None) -> str:
    """An album name or article code as stored: NFC, 1 to 200 characters, no `/`, no control
    characters, not `.` or `..`. Spaces around it are dropped (a folder's trailing space is invisible)."""
    name = unicodedata.normalize("NFC", value or "").strip()
    if (
        not name
        or len(name) > MAX_NAME_LENGTH
        or name in {".", ".."}
        or "/" in name
        or any(unicodedata.category(char) in {"Cc", "Cs"} or char in _BIDI_CONTROLS for char in name)
    ):
        raise InvalidName(name=_shown(value or ""))
    return name


def _shown(value: str) -> str:
    """The refused name as a message may show it: control characters made visible, bounded."""
    visible = "".join(char if unicodedata.category(char) not in {"Cc", "Cs"} else "\ufffd" for char in value)
    return visible[:60] + ("…" if len(visible) > 60 else "")


_RUNS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """`SKU2` before `SKU10`; case does not matter."""
    return tuple((0, int(run)) if run.isdigit() else (1, run.casefold()) for run in _RUNS.split(name) if run)
