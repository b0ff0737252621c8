"""Russian and English: negotiation, the remembered switch, and a translation for every string."""

from __future__ import annotations

import subprocess
import sys

from babel.messages.pofile import read_po

from imagehost.web.i18n import LOCALE_DIR, best_language
from tests.conftest import HTML, PROJECT_ROOT, png_bytes, upload


def test_accept_language_picks_russian():
    assert best_language("ru-RU,ru;q=0.9,en;q=0.8", "en") == "ru"
    assert best_language("de-DE,en;q=0.5", "ru") == "en"
    assert best_language("de-DE", "ru") == "ru"
    assert best_language("en;q=0.1,ru;q=0.5", "en") == "ru"


def test_pages_in_russian_from_the_browser_language(client):
    for _ in range(11):
        upload(client, png_bytes())
    html = client.get("/images/", headers={**HTML, "Accept-Language": "ru"}).text
    assert '<html lang="ru">' in html
    assert "Следующая страница" in html and "Каталог" in html
    assert "страница 1 из 2" in html
    assert "Предыдущая страница" in client.get("/images/?page=2", headers={**HTML, "Accept-Language": "ru"}).text


def test_the_switch_is_remembered(client):
    response = client.get("/language/ru?next=/upload", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/upload"
    html = client.get("/upload", headers=HTML).text
    assert "Загрузить изображение" in html
    client.get("/language/en?next=/")
    assert "Upload an image" in client.get("/upload", headers={**HTML, "Accept-Language": "ru"}).text


def test_the_switch_never_redirects_off_site(client):
    for target in ("https://evil.example", "//evil.example"):
        response = client.get(f"/language/ru?next={target}", follow_redirects=False)
        assert response.headers["location"] == "/"


def test_error_messages_are_translated_in_every_representation(client):
    ru = {"Accept-Language": "ru"}
    json_error = upload(client, b"hello", "notes.txt", headers=ru).json()["error"]
    assert json_error == "Файл notes.txt не является поддерживаемым изображением: принимаются только JPEG, PNG, GIF."
    page = upload(client, b"hello", "notes.txt", headers={**HTML, **ru})
    assert "Файл notes.txt" in page.text and "<html" in page.text
    fragment = upload(client, b"hello", "notes.txt", headers={"HX-Request": "true", **ru})
    assert "Файл notes.txt" in fragment.text


def test_default_language_setting(make_client):
    client = make_client(default_language="ru")
    assert "Каталог" in client.get("/", headers=HTML).text
    assert "Catalogue" in client.get("/", headers={**HTML, "Accept-Language": "en"}).text


def test_every_interface_string_has_a_russian_translation(tmp_path):
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "N_",
            "-k",
            "_",
            "--no-location",
            "-o",
            str(pot),
            ".",
        ],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    )
    with pot.open("rb") as source:
        wanted = {message.id for message in read_po(source) if message.id}
    with (LOCALE_DIR / "ru" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        translated = {message.id for message in read_po(source) if message.id and message.string}
    assert len(wanted) > 40
    assert wanted - translated == set()


def test_the_switch_returns_to_the_address_the_page_shows_now(client):
    # After htmx paging the address bar (and so Referer) says page 2; the switch goes back there.
    response = client.get(
        "/language/ru?next=/images/",
        headers={"Referer": "http://testserver.local/images/?page=2"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/images/?page=2"
    foreign = client.get("/language/ru", headers={"Referer": "https://evil.example/x"}, follow_redirects=False)
    assert foreign.headers["location"] == "/"
