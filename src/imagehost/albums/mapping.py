"""Where each file of an archive goes: its album, its article and its place in the photo order.

PicHosting's rule, made consistent:
- the album is `album_name` when given; else the archive's single top-level folder when it has
  exactly one and no files beside it; else the archive's file name without `.zip`. When that one
  folder exists it is the album's level whatever the album is called, so the same archive lands
  in the same articles with or without `album_name`;
- the article is the folder directly holding the file, below the album;
- a file directly in the album takes its article from its file name with a trailing photo number
  removed (`SKU3_1.jpg`, `SKU3-2.jpg`, `SKU3 (3).jpg` -> `SKU3`);
- within an article the photos are ordered by that number, else by natural name order.

A pure function of the entries' names: nothing here touches a file or the database.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from imagehost.albums.names import catalogue_name, natural_key
from imagehost.errors import ImageHostError

_PHOTO_NUMBER = re.compile(r"^(?P<article>.+?)(?:[_-](?P<number>\d+)|\s\((?P<bracketed>\d+)\))$")


@dataclass(frozen=True)
class Placement:
    article: str
    position: int  # 1, 2, ... within the article, in this archive


@dataclass(frozen=True)
class Mapping:
    album: str
    # Per file (the same order as given): its place, or the refusal of its article's name.
    placements: list[Placement | ImageHostError]


def album_from_archive_name(archive_name: str) -> str:
    name = (archive_name or "").replace("\\", "/").rsplit("/", 1)[-1]
    return name[:-4] if name.lower().endswith(".zip") else name


def photo_number(file_name: str) -> tuple[str, int | None]:
    """(`SKU3`, 2) for `SKU3_2.jpg`; (stem, None) when the name ends in no photo number."""
    stem = file_name.rpartition(".")[0] or file_name
    match = _PHOTO_NUMBER.match(stem)
    if match is None:
        return stem, None
    return match["article"].rstrip(), int(match["number"] or match["bracketed"])


def map_files(files: list[tuple[str, ...]], archive_name: str, album_name: str | None = None) -> Mapping:
    """`files` are the path parts of each file entry (folders skipped, names already made safe).

    Raises InvalidName when the album's name breaks the name rule; an article whose name breaks it
    refuses only the files in it.
    """
    top_folders = {parts[0] for parts in files if len(parts) > 1}
    root_files = [parts for parts in files if len(parts) == 1]
    strip = 1 if len(top_folders) == 1 and not root_files else 0
    if album_name:
        album = catalogue_name(album_name)
    elif strip:
        album = catalogue_name(next(iter(top_folders)))
    else:
        album = catalogue_name(album_from_archive_name(archive_name))

    wanted: list[tuple[str, tuple[bool, int, tuple]] | ImageHostError] = []
    for parts in files:
        inside = parts[strip:]
        file_name = inside[-1]
        if len(inside) > 1:
            raw_article, number = inside[-2], None
        else:
            raw_article, number = photo_number(file_name)
        try:
            article = catalogue_name(raw_article)
        except ImageHostError as refusal:
            wanted.append(refusal)
            continue
        wanted.append((article, (number is not None, number or 0, natural_key(file_name))))

    by_article: dict[str, list[tuple[tuple, int]]] = defaultdict(list)
    for index, item in enumerate(wanted):
        if not isinstance(item, ImageHostError):
            by_article[item[0]].append((item[1], index))
    positions: dict[int, int] = {}
    for members in by_article.values():
        for position, (_key, index) in enumerate(sorted(members), start=1):
            positions[index] = position
    placements: list[Placement | ImageHostError] = [
        item if isinstance(item, ImageHostError) else Placement(article=item[0], position=positions[index])
        for index, item in enumerate(wanted)
    ]
    return Mapping(album=album, placements=placements)
