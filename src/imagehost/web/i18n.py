"""Russian and English: gettext catalogues (Babel) read from the .po files, one language per request."""

from __future__ import annotations

import io
from contextvars import ContextVar
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from litestar import Request

from imagehost.settings import SUPPORTED_LANGUAGES

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGE_COOKIE = "lang"
LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}

_current_language: ContextVar[str] = ContextVar("imagehost_language", default="en")


def load_translations(locale_dir: Path = LOCALE_DIR) -> dict[str, NullTranslations]:
    """Compile each language's .po in memory, so no build step or committed binary is needed."""
    catalogues: dict[str, NullTranslations] = {"en": NullTranslations()}
    for language in SUPPORTED_LANGUAGES:
        po_file = locale_dir / language / "LC_MESSAGES" / "messages.po"
        if language == "en" or not po_file.exists():
            continue
        with po_file.open("rb") as source:
            catalog = read_po(source, locale=language)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        catalogues[language] = Translations(fp=compiled)
    return catalogues


class Translator:
    def __init__(self, catalogues: dict[str, NullTranslations], default_language: str) -> None:
        self.catalogues = catalogues
        self.default_language = default_language

    @staticmethod
    def current() -> str:
        return _current_language.get()

    def use(self, language: str) -> None:
        _current_language.set(language if language in self.catalogues else self.default_language)

    def gettext(self, message: str) -> str:
        return self.catalogues.get(_current_language.get(), self.catalogues["en"]).gettext(message)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        catalogue = self.catalogues.get(_current_language.get(), self.catalogues["en"])
        return catalogue.ngettext(singular, plural, count)

    def negotiate(self, request: Request) -> str:
        """The remembered choice (cookie) first, then the browser's Accept-Language, then the default."""
        chosen = request.cookies.get(LANGUAGE_COOKIE, "")
        if chosen in SUPPORTED_LANGUAGES:
            return chosen
        return best_language(request.headers.get("accept-language", ""), self.default_language)


def best_language(header: str, default: str) -> str:
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        pieces = part.strip().split(";")
        tag = pieces[0].strip().lower()
        quality = 1.0
        for parameter in pieces[1:]:
            name, _, value = parameter.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, position, tag))
    for _, _, tag in sorted(ranked):
        primary = tag.split("-")[0]
        if primary in SUPPORTED_LANGUAGES:
            return primary
        if tag == "*":
            return default
    return default
