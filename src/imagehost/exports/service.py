"""What the exports read: an album's articles with their images in photo order (link sheets, the
album ZIP) and the catalogue with its filters. Knows nothing of HTTP: the callers turn the rows
into XLSX, CSV or ZIP. Rows come in batches (articles by the hundred, images by keyset pages), so
memory does not grow with the album or the catalogue."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from imagehost.accounts.principal import Principal
from imagehost.albums.names import catalogue_name, natural_key
from imagehost.albums.service import AlbumService, FoundAlbum
from imagehost.albums.tables import AlbumImage, Article
from imagehost.errors import ArticleNotFound, InvalidParameter, MissingParameter
from imagehost.exports.slots import ExportSlot, ExportSlots
from imagehost.images.formats import stored_format_of_extension
from imagehost.images.service import StoredImage
from imagehost.logging import action_log

EXPORT_TYPES = ("in_row", "in_cell")
DELIMITERS = (",", ";")
MAX_SEPARATOR_LENGTH = 20
IMAGES_PER_PAGE = 1000

_IMAGE_COLUMNS = (
    "i.id, i.stored_name, i.original_name, i.size_bytes, i.file_format, i.sha256, i.uploaded_at,"
    " i.width, i.height, i.source_format, i.quality, i.uploader_sub, i.uploader_name"
)


def _text(values: Mapping[str, object], name: str) -> str | None:
    value = values.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidParameter(field=name, reason="text expected")
    return value


@dataclass(frozen=True)
class LinkSheetQuery:
    """PicHosting's parameters, from a JSON body or a query string alike."""

    album_name: str
    article_name: str | None = None
    export_type: str = "in_row"
    separator: str = ", "
    delimiter: str = ","

    @classmethod
    def parse(cls, values: Mapping[str, object]) -> LinkSheetQuery:
        album = _text(values, "album_name")
        if album is None or not album.strip():
            raise MissingParameter(name="album_name")
        article = _text(values, "article_name")
        export_type = (_text(values, "export_type") or "in_row").strip().lower()
        if export_type not in EXPORT_TYPES:
            raise InvalidParameter(field="export_type", reason="in_row or in_cell")
        separator = _text(values, "separator")
        separator = ", " if separator is None or separator == "" else separator.replace("\\n", "\n")
        if len(separator) > MAX_SEPARATOR_LENGTH:
            raise InvalidParameter(field="separator", reason=f"at most {MAX_SEPARATOR_LENGTH} characters")
        delimiter = _text(values, "delimiter") or ","
        if delimiter not in DELIMITERS:
            raise InvalidParameter(field="delimiter", reason="`,` or `;`")
        return cls(
            album_name=album,
            article_name=article if article and article.strip() else None,
            export_type=export_type,
            separator=separator,
            delimiter=delimiter,
        )


@dataclass(frozen=True)
class ArticleImages:
    code: str
    images: list[StoredImage]


@dataclass
class LinkSheet:
    album: str
    article: str | None
    widest: int  # the most images one article has: the in_row layout's number of link columns
    articles: AsyncIterator[ArticleImages]


@dataclass(frozen=True)
class CatalogueQuery:
    album_name: str | None = None
    article_name: str | None = None
    uploader: str | None = None
    file_format: str | None = None
    uploaded_from: datetime | None = None
    uploaded_before: datetime | None = None

    @classmethod
    def parse(cls, values: Mapping[str, object]) -> CatalogueQuery:
        def given(name: str) -> str | None:
            value = _text(values, name)
            return value.strip() if value and value.strip() else None

        album, article = given("album_name"), given("article_name")
        file_format = None
        if (extension := given("format")) is not None:
            found = stored_format_of_extension(extension.lower().lstrip("."))
            if found is None and extension.lower() == "jpeg":
                found = stored_format_of_extension("jpg")
            if found is None:
                raise InvalidParameter(field="format", reason="jpg, png, gif or webp")
            file_format = found.name
        return cls(
            album_name=catalogue_name(album) if album else None,
            article_name=catalogue_name(article) if article else None,
            uploader=given("uploader"),
            file_format=file_format,
            uploaded_from=_moment(given("from"), "from", end_of_day=False),
            uploaded_before=_moment(given("to"), "to", end_of_day=True),
        )


def _moment(value: str | None, name: str, *, end_of_day: bool) -> datetime | None:
    """ISO 8601; a bare date `to=2026-03-01` takes that whole day in (the bound is the next midnight)."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end_of_day else moment
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidParameter(field=name, reason="an ISO 8601 date or time, e.g. 2026-03-01") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CatalogueRow:
    image: StoredImage
    album_name: str | None
    article_code: str | None


class ExportService:
    def __init__(self, albums: AlbumService) -> None:
        self.albums = albums
        self.images = albums.images
        self.policy = albums.policy
        self.log = action_log()
        self.slots = ExportSlots(self.images.settings.export_concurrency)

    # --- Albums and articles ---------------------------------------------------------------------

    async def _articles(self, album: FoundAlbum, code: str | None) -> list[tuple[int, str]]:
        """(id, code) of the album's articles (or the one named), in natural order of code."""
        query = Article.select(Article.id, Article.code).where(Article.album == album.id)
        if code is not None:
            query = query.where(Article.code == catalogue_name(code))
        rows = await query
        if code is not None and not rows:
            raise ArticleNotFound(album=album.name, article=code)
        return sorted(((row["id"], row["code"]) for row in rows), key=lambda item: natural_key(item[1]))

    async def _image_counts(self, articles: list[tuple[int, str]]) -> dict[int, int]:
        rows = await AlbumImage.raw(
            "SELECT article, count(*) AS n FROM album_images WHERE article = ANY({}) GROUP BY article",
            [article_id for article_id, _ in articles],
        )
        return {row["article"]: row["n"] for row in rows}

    async def _images_of(self, articles: list[tuple[int, str]], counts: dict[int, int]) -> AsyncIterator[ArticleImages]:
        """Articles in batches of about IMAGES_PER_PAGE images (an article larger than that alone)."""
        start = 0
        while start < len(articles):
            end, images = start, 0
            while end < len(articles) and (end == start or images + counts.get(articles[end][0], 0) <= IMAGES_PER_PAGE):
                images += counts.get(articles[end][0], 0)
                end += 1
            batch, start = articles[start:end], end
            rows = await AlbumImage.raw(
                f"SELECT ai.article AS article_id, {_IMAGE_COLUMNS} FROM album_images ai JOIN images i"  # noqa: S608
                " ON i.id = ai.image WHERE ai.article = ANY({}) ORDER BY ai.position, ai.image",
                [article_id for article_id, _ in batch],
            )
            found: dict[int, list[StoredImage]] = {}
            for row in rows:
                found.setdefault(row["article_id"], []).append(StoredImage.from_row(row))
            del rows
            for article_id, code in batch:
                yield ArticleImages(code, found.pop(article_id, []))

    async def link_sheet(self, query: LinkSheetQuery, principal: Principal) -> LinkSheet:
        """The album's (or one article's) images per article, in photo order; articles in natural order."""
        self.policy.require_browse(principal)
        album = await self.albums.album(query.album_name)
        articles = await self._articles(album, query.article_name)
        counts = await self._image_counts(articles)
        article = articles[0][1] if query.article_name is not None else None
        return LinkSheet(album.name, article, max(counts.values(), default=0), self._images_of(articles, counts))

    async def album_images(
        self, album_name: str, article: str | None, principal: Principal
    ) -> tuple[str, AsyncIterator[ArticleImages]]:
        self.policy.require_browse(principal)
        album = await self.albums.album(album_name)
        articles = await self._articles(album, article)
        return album.name, self._images_of(articles, await self._image_counts(articles))

    # --- The catalogue ---------------------------------------------------------------------------

    async def catalogue(self, query: CatalogueQuery, principal: Principal) -> AsyncIterator[CatalogueRow]:
        """Every image matching the filters, oldest first, a keyset page at a time."""
        self.policy.require_browse(principal)
        if query.uploader is not None and not self.policy.sees_uploaders(principal):
            raise InvalidParameter(field="uploader", reason="only administrators see who uploaded")
        conditions, values = [], []
        for condition, value in (
            ("al.name = {}", query.album_name),
            ("ar.code = {}", query.article_name),
            ("(i.uploader_name = {} OR i.uploader_sub = {})", query.uploader),
            ("i.file_format = {}", query.file_format),
            ("i.uploaded_at >= {}", query.uploaded_from),
            ("i.uploaded_at < {}", query.uploaded_before),
        ):
            if value is not None:
                conditions.append(condition)
                values.extend([value] * condition.count("{}"))
        where = "".join(f" AND {condition}" for condition in conditions)
        sql = (
            # Our own conditions; every value is a parameter.
            f"SELECT {_IMAGE_COLUMNS}, al.name AS album_name, ar.code AS article_code FROM images i"  # noqa: S608
            " LEFT JOIN album_images ai ON ai.image = i.id LEFT JOIN albums al ON al.id = ai.album"
            f" LEFT JOIN articles ar ON ar.id = ai.article WHERE i.id > {{}}{where} ORDER BY i.id LIMIT {{}}"
        )
        return self._catalogue_pages(sql, values)

    async def _catalogue_pages(self, sql: str, values: list[object]) -> AsyncIterator[CatalogueRow]:
        after = 0
        while True:
            rows = await AlbumImage.raw(sql, after, *values, IMAGES_PER_PAGE)
            for row in rows:
                yield CatalogueRow(StoredImage.from_row(row), row["album_name"], row["article_code"])
            if len(rows) < IMAGES_PER_PAGE:
                return
            after = rows[-1]["id"]

    # --- Running exports and the log -------------------------------------------------------------

    def start(self, what: str, principal: Principal) -> ExportSlot:
        """A slot for one export (give it back when its answer ends), or ExportsBusy past EXPORT_CONCURRENCY."""
        return self.slots.take(f"export {what}", _who(principal))

    def log_export(self, what: str, principal: Principal, rows: int, detail: str = "") -> None:
        self.log.info(f"export {what} by {_who(principal)}: {rows} row(s){detail}.", action="Success")


def _who(principal: Principal) -> str:
    return principal.name or principal.sub or "anonymous"
