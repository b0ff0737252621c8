"""One list of formats (images/formats.py), and everything that lists formats agrees with it.

nginx.conf cannot import the registry, so it is read here: every extension alternation in its
regexes and every `types` block of image types must say exactly what the registry says.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from imagehost.images import formats
from imagehost.images.inspection import CONTENT_TYPES, EXTENSIONS
from imagehost.images.storage import STORED_NAME
from imagehost.settings import Settings, SettingsError
from tests.conftest import HTML

NGINX_CONF = Path(__file__).resolve().parents[2] / "nginx.conf"
STORED_EXTENSIONS = {image_format.extension for image_format in formats.STORED}


def nginx_conf() -> str:
    # Comments may name formats in prose; only directives count.
    return "\n".join(line.split("#", 1)[0] for line in NGINX_CONF.read_text().splitlines())


def test_nginx_regexes_list_exactly_the_stored_extensions():
    alternations = re.findall(r"\\\.\(([a-z0-9|]+)\)", nginx_conf())
    assert len(alternations) >= 3  # the originals, the thumbnails, the unknown-name guard
    for alternation in alternations:
        assert set(alternation.split("|")) == STORED_EXTENSIONS, alternation


def test_nginx_types_blocks_serve_each_stored_extension_as_its_content_type():
    stored_types = [image_format.content_type for image_format in formats.STORED]
    blocks = re.findall(r"types\s*\{([^}]*)\}", nginx_conf())
    blocks = [block for block in blocks if any(content_type in block for content_type in stored_types)]
    assert len(blocks) >= 2  # direct links and X-Accel downloads (thumbnails are all WebP)
    expected = {image_format.extension: image_format.content_type for image_format in formats.STORED}
    for block in blocks:
        served = {}
        for content_type, *extensions in (line.rstrip(";").split() for line in block.split(";") if line.strip()):
            served.update(dict.fromkeys(extensions, content_type))
        assert served == expected, block


def test_stored_names_take_the_stored_extensions_and_nothing_else():
    stem = "A" * 22
    for extension in STORED_EXTENSIONS:
        assert STORED_NAME.fullmatch(f"{stem}.{extension}")
    for other in ("webp", "bmp", "jpeg", "svg", "html", "JPG"):
        assert not STORED_NAME.fullmatch(f"{stem}.{other}")


def made(image_format: formats.ImageFormat) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 120, 200)).save(buffer, image_format.name)
    return buffer.getvalue()


@pytest.mark.parametrize("image_format", formats.FORMATS, ids=lambda image_format: image_format.name)
def test_each_format_is_what_pillow_calls_it_and_its_magic_bytes_match_its_files(image_format):
    content = made(image_format)
    plugin = __import__(f"PIL.{image_format.pillow_plugin}", fromlist=["_"])
    assert image_format.name in Image.OPEN and Image.OPEN[image_format.name][0].__module__ == plugin.__name__
    with Image.open(io.BytesIO(content), formats=[image_format.name]) as image:
        assert image.format == image_format.name
        assert Image.MIME[image_format.name] == image_format.content_type
    head = content[: formats.MAGIC_LENGTH]
    assert [found.name for found in formats.FORMATS if found.starts(head)] == [image_format.name]
    assert formats.sniffed(head, formats.CONVERTIBLE_NAMES + formats.ARCHIVE_CONVERTIBLE_NAMES) is image_format


def test_the_other_lists_are_made_from_the_registry():
    assert Settings().allowed_formats == formats.STORED_NAMES == ("JPEG", "PNG", "GIF")
    assert EXTENSIONS == {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif"}
    assert CONTENT_TYPES == {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif"}
    assert formats.accept_attribute(("PNG", "GIF")) == "image/png,image/gif"
    assert formats.named_by_pillow("MPO") == "JPEG" and formats.named_by_pillow("TIFF") == "TIFF"


def test_allowed_formats_outside_the_stored_ones_are_refused_at_start():
    assert Settings.from_env({"ALLOWED_FORMATS": "png,gif"}).allowed_formats == ("PNG", "GIF")
    with pytest.raises(SettingsError, match="WEBP"):
        Settings.from_env({"ALLOWED_FORMATS": "JPEG,WEBP"})


@pytest.mark.parametrize("allowed", [("JPEG", "PNG", "GIF"), ("PNG",)])
def test_the_pages_offer_the_allowed_formats_and_nothing_else(make_client, allowed):
    client = make_client(allowed_formats=allowed)
    page = client.get("/upload", headers=HTML).text
    accept = re.search(r'<input id="file-input"[^>]*accept="([^"]*)"', page).group(1)
    # The allowed image formats, and ZIP archives of them (unpacked into albums).
    assert accept == ",".join(formats.BY_NAME[name].content_type for name in allowed) + ",.zip,application/zip"

    # The prose of the pages (footer, home page, drop zone) names the same formats, in English and Russian.
    names = ", ".join(allowed)
    for language in ("en", "ru"):
        for path in ("/", "/upload"):
            html = client.get(path, headers={**HTML, "Accept-Language": language}).text
            assert names in html
            for other in set(formats.STORED_NAMES) - set(allowed):
                assert other not in html, (language, path, other)
