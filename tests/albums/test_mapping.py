"""The folder mapping and the name rule: pure functions, every rule of the issue."""

from __future__ import annotations

import io
import zipfile

import pytest

from imagehost.albums.archive import decoded_name, safe_parts
from imagehost.albums.mapping import Placement, map_files, photo_number
from imagehost.albums.names import catalogue_name, natural_key
from imagehost.errors import InvalidName
from tests.albums.zips import with_cp866_names


def parts(*names: str) -> list[tuple[str, ...]]:
    return [safe_parts(name) for name in names]


def placed(mapping) -> list[tuple[str, int]]:
    return [(p.article, p.position) for p in mapping.placements]


def test_album_name_given_wins():
    mapping = map_files(parts("Shop/SKU1/a.jpg"), "upload.zip", album_name="Весна 2026")
    assert mapping.album == "Весна 2026"
    assert placed(mapping) == [("SKU1", 1)]


def test_a_single_top_folder_without_root_files_is_the_album():
    mapping = map_files(parts("Shop/SKU1/a.jpg", "Shop/SKU1/b.jpg", "Shop/SKU2/c.jpg"), "whatever.zip")
    assert mapping.album == "Shop"
    assert placed(mapping) == [("SKU1", 1), ("SKU1", 2), ("SKU2", 1)]


def test_the_same_archive_lands_in_the_same_articles_with_an_album_name():
    files = parts("Shop/SKU1/a.jpg", "Shop/SKU2_1.jpg")
    assert placed(map_files(files, "x.zip")) == placed(map_files(files, "x.zip", album_name="Other"))


def test_files_beside_the_top_folder_make_the_archive_name_the_album():
    mapping = map_files(parts("Shop/SKU1/a.jpg", "readme.jpg"), "Каталог.ZIP")
    assert mapping.album == "Каталог"
    assert placed(mapping) == [("SKU1", 1), ("readme", 1)]


def test_several_top_folders_make_the_archive_name_the_album():
    mapping = map_files(parts("SKU1/a.jpg", "SKU2/b.jpg"), "C:\\Users\\me\\shop.zip")
    assert mapping.album == "shop"
    assert placed(mapping) == [("SKU1", 1), ("SKU2", 1)]


def test_the_article_is_the_folder_directly_holding_the_file():
    mapping = map_files(parts("Shop/Winter/SKU7/a.jpg", "Shop/Winter/b.jpg"), "x.zip")
    assert mapping.album == "Shop"
    assert placed(mapping) == [("SKU7", 1), ("Winter", 1)]


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("SKU3_1.jpg", ("SKU3", 1)),
        ("SKU3-2.jpg", ("SKU3", 2)),
        ("SKU3 (3).jpg", ("SKU3", 3)),
        ("АРТ-77_12.png", ("АРТ-77", 12)),
        ("SKU3.jpg", ("SKU3", None)),
        ("12345.jpg", ("12345", None)),
        ("_1.jpg", ("_1", None)),
        ("noextension_4", ("noextension", 4)),
    ],
)
def test_a_trailing_photo_number(file_name, expected):
    assert photo_number(file_name) == expected


def test_files_directly_in_the_album_group_by_article_in_photo_order():
    files = parts("SKU3_10.jpg", "SKU3_2.jpg", "SKU3 (1).jpg", "SKU4-1.jpg", "SKU3.jpg")
    mapping = map_files(files, "shop.zip")
    assert mapping.album == "shop"
    # The photo without a number comes first, then by number (10 after 2: numbers, not text).
    assert placed(mapping) == [("SKU3", 4), ("SKU3", 3), ("SKU3", 2), ("SKU4", 1), ("SKU3", 1)]


def test_files_in_a_folder_are_in_natural_name_order():
    files = parts("Shop/A/photo10.jpg", "Shop/A/photo2.jpg", "Shop/A/Photo1.jpg")
    assert placed(map_files(files, "x.zip")) == [("A", 3), ("A", 2), ("A", 1)]


def test_an_article_with_a_bad_name_refuses_only_its_files():
    mapping = map_files([("Shop", "bad\x07name", "a.jpg"), ("Shop", "ok", "b.jpg")], "x.zip")
    assert isinstance(mapping.placements[0], InvalidName)
    assert mapping.placements[1] == Placement(article="ok", position=1)


def test_a_bad_album_name_is_refused():
    with pytest.raises(InvalidName):
        map_files(parts("a.jpg"), "...zip")  # "..": not a name
    with pytest.raises(InvalidName):
        map_files(parts("a.jpg"), "x.zip", album_name="a/b")


@pytest.mark.parametrize("bad", ["", "   ", ".", "..", "a/b", "x" * 201, "tab\there", "nul\x00", "\u202eevil"])
def test_the_name_rule_refuses(bad):
    with pytest.raises(InvalidName):
        catalogue_name(bad)


def test_the_name_rule_normalizes_to_nfc():
    decomposed = "\u0418\u0306огурт"  # И + combining breve
    assert decomposed != "\u0419огурт"
    assert catalogue_name(decomposed) == "\u0419огурт"
    assert catalogue_name(" " + "x" * 200 + " ") == "x" * 200
    assert catalogue_name("a\\b") == "a\\b"  # a backslash is a character in a name, not a folder


def test_natural_order():
    names = ["SKU10", "sku2", "SKU1", "Арт-3"]
    assert sorted(names, key=natural_key) == ["SKU1", "sku2", "SKU10", "Арт-3"]


def test_names_that_would_climb_out_are_only_parts():
    assert safe_parts("../../etc/passwd.jpg") == ("etc", "passwd.jpg")
    assert safe_parts("/abs/x.jpg") == ("abs", "x.jpg")
    assert safe_parts("C:\\Windows\\x.jpg") == ("Windows", "x.jpg")
    assert safe_parts("a\\b\\./c.jpg") == ("a", "b", "c.jpg")


def test_cp866_names_from_windows_archiver_are_decoded():
    raw = with_cp866_names([("Каталог/Артикул-1/фото_1.jpg", b"x"), ("Каталог/Артикул-1/фото_2.jpg", b"y")])
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        infos = archive.infolist()
        assert all(not info.flag_bits & 0x800 for info in infos)  # really without the UTF-8 flag
        assert infos[0].filename != "Каталог/Артикул-1/фото_1.jpg"  # zipfile alone reads cp437
        names = [decoded_name(info) for info in infos]
    assert names == ["Каталог/Артикул-1/фото_1.jpg", "Каталог/Артикул-1/фото_2.jpg"]
    mapping = map_files([safe_parts(name) for name in names], "archive.zip")
    assert mapping.album == "Каталог"
    assert placed(mapping) == [("Артикул-1", 1), ("Артикул-1", 2)]


def test_utf8_names_with_and_without_the_flag():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Альбом/a.jpg", b"x")  # zipfile sets the flag
    with zipfile.ZipFile(buffer) as archive:
        assert decoded_name(archive.infolist()[0]) == "Альбом/a.jpg"
