"""Albums and articles: listings, counts, renames, moves, reorders and deletes; ZIP batch uploads
into them are albums/intake.py's (AlbumService.intake).

Knows nothing of HTTP. Images leave an album through ImageService's crash-safe delete.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import asyncpg

from imagehost.accounts.principal import Principal
from imagehost.albums.names import catalogue_name, natural_key
from imagehost.albums.tables import Album, AlbumImage, Article
from imagehost.errors import (
    AlbumChangeForbidden,
    AlbumExists,
    AlbumForbidden,
    AlbumNameTaken,
    AlbumNotFound,
    ArticleCodeTaken,
    ArticleNotFound,
    ImageHostError,
    ImageNotInAlbum,
    InvalidParameter,
    OrderMismatch,
    SameFileInArticle,
)
from imagehost.images.service import DeleteCredentials, ImageService, StoredImage, album_count
from imagehost.images.tables import LARGEST_IMAGE_ID
from imagehost.logging import action_log


@dataclass(frozen=True)
class AlbumFile:
    """An image as PicHosting's API lists it: with its album and article."""

    image: StoredImage
    album_name: str
    article_number: str


@dataclass(frozen=True)
class MovedImages:
    """What a move did: where the images went, how many moved, and the articles it left empty
    (deleted: an article without images does not linger)."""

    album_name: str
    article_number: str
    moved: int
    emptied: list[tuple[str, str]]  # (album, article) removed


@dataclass(frozen=True)
class FoundAlbum:
    id: int
    name: str
    created_by_sub: str | None


@dataclass(frozen=True)
class CountedAlbum:
    album: FoundAlbum
    articles: int
    images: int


# The images columns StoredImage.from_row reads, for the queries that join album_images to images.
SELECT_FILES = (
    "SELECT i.id, i.stored_name, i.original_name, i.size_bytes, i.file_format, i.sha256, i.uploaded_at,"
    " i.width, i.height, i.source_format, i.quality, i.uploader_sub, i.uploader_name, a.code"
    " FROM album_images ai JOIN images i ON i.id = ai.image JOIN articles a ON a.id = ai.article"
)
# `a.album = ai.album` lets the planner read only the album's articles (articles_album_code), not all.
_ALBUM_FILES = SELECT_FILES + " WHERE ai.album = {} AND a.album = ai.album ORDER BY ai.image DESC"
_ARTICLE_FILES = SELECT_FILES + " WHERE ai.article = {} ORDER BY ai.image DESC"


# The images a move names, with where they are and their two digests (the duplicate test).
_MOVED_ROWS = (
    "SELECT ai.image, ai.article, ai.source_sha256, i.sha256, ar.code, al.id AS album_id, al.name AS album_name,"
    " al.created_by_sub FROM album_images ai JOIN images i ON i.id = ai.image JOIN articles ar ON ar.id = ai.article"
    " JOIN albums al ON al.id = ai.album WHERE ai.image = ANY({}) ORDER BY ai.image"
)
# The target article's images holding one of these files (as uploaded, or as stored).
_SAME_FILES_IN_ARTICLE = (
    "SELECT ai.image, ai.source_sha256, i.sha256 FROM album_images ai JOIN images i ON i.id = ai.image"
    " WHERE ai.article = {} AND NOT ai.image = ANY({}) AND (ai.source_sha256 = ANY({}) OR i.sha256 = ANY({})) LIMIT 1"
)
# Images moved into an article in one statement: the n-th id goes to place base + n.
_MOVE_TO_ARTICLE = (
    "UPDATE album_images ai SET album = {}, article = {}, position = {} + m.n"
    " FROM unnest({}::int[]) WITH ORDINALITY AS m(image, n) WHERE ai.image = m.image"
)
# An article's new order: the n-th id gets place n. Only the rows whose place changes are written
# (a shift by one writes two), and never album or article, so the count trigger does not fire.
_SET_ORDER = (
    "UPDATE album_images ai SET position = m.n FROM unnest({}::int[]) WITH ORDINALITY AS m(image, n)"
    " WHERE ai.image = m.image AND ai.position IS DISTINCT FROM m.n"
)
# Moves and reorders take their articles' rows first, in id order (no deadlock between two of them);
# NO KEY UPDATE lets uploads go on linking new images to them meanwhile.
_LOCK_ARTICLES = "SELECT id FROM articles WHERE id = ANY({}) ORDER BY id FOR NO KEY UPDATE"
MOST_MOVED = 1000  # image ids in one move


class AlbumService:
    def __init__(self, images: ImageService) -> None:
        self.images = images
        self.settings = images.settings
        self.policy = images.policy
        self.log = action_log()
        from imagehost.albums.intake import ArchiveIntake  # it finds and empties albums through this service

        self.intake = ArchiveIntake(self)

    def linker(
        self,
        album: str,
        principal: Principal,
        article: str,
        position: int | None,
        digest: str,
        job: dict[str, int | None],
    ) -> Any:
        """The `link` ImageService.upload runs in the image's transaction: the image into `album` and
        `article` (made when missing) at `position` (None: after the article's last photo).
        `job["album_id"]`: the album this upload (a ZIP, or one request's files) found or created,
        shared by its entries; None until it has one."""

        async def link(image_id: int) -> None:
            # In the image's own transaction. ON CONFLICT DO NOTHING waits for another entry's
            # transaction creating the same album, then finds its row. An album whose creating
            # transaction rolled back is simply created again.
            found = await Album.select(Album.id).where(Album.name == album).first()
            if found is None:
                created = await Album.raw(
                    "INSERT INTO albums (name, created_by_sub, created_by_name) VALUES ({}, {}, {})"
                    " ON CONFLICT (name) DO NOTHING RETURNING id",
                    album,
                    principal.sub if principal.signed_in else None,
                    principal.name if principal.signed_in else None,
                )
                if created:
                    job["album_id"] = created[0]["id"]
                found = await Album.select(Album.id).where(Album.name == album).first()
            if found["id"] != job["album_id"] and not self.policy.may_add_to_album(principal):
                # Someone else created it since this upload began: an anonymous upload stays out.
                raise AlbumExists(name=album)
            album_id = found["id"]
            await Article.raw(
                "INSERT INTO articles (album, code) VALUES ({}, {}) ON CONFLICT (album, code) DO NOTHING",
                album_id,
                article,
            )
            article_id = (
                await Article.select(Article.id).where(Article.album == album_id, Article.code == article).first()
            )["id"]
            # No position given (a single upload): after the article's last photo, read in this transaction.
            await AlbumImage.raw(
                "INSERT INTO album_images (image, album, article, position, source_sha256) VALUES ({}, {}, {},"
                " COALESCE({}, (SELECT max(position) + 1 FROM album_images WHERE article = {}), 1), {})",
                image_id,
                album_id,
                article_id,
                position,
                article_id,
                digest,
            )

        return link

    @staticmethod
    async def _album_row(name: str) -> dict[str, Any] | None:
        return await (
            Album.select(Album.id, Album.name, Album.created_by_sub, Album.article_count, Album.image_count)
            .where(Album.name == catalogue_name(name))
            .first()
        )

    async def find_album(self, name: str) -> FoundAlbum | None:
        row = await self._album_row(name)
        return FoundAlbum(row["id"], row["name"], row["created_by_sub"]) if row else None

    async def counted_album(self, name: str) -> CountedAlbum:
        """The album named so with its kept counts, in one read; or AlbumNotFound (404)."""
        row = await self._album_row(name)
        if row is None:
            raise AlbumNotFound(name=name)
        album = FoundAlbum(row["id"], row["name"], row["created_by_sub"])
        return CountedAlbum(album, row["article_count"], row["image_count"])

    async def album(self, name: str) -> FoundAlbum:
        """The album named so, or AlbumNotFound (404)."""
        album = await self.find_album(name)
        if album is None:
            raise AlbumNotFound(name=name)
        return album

    async def _article_id(self, album: FoundAlbum, code: str) -> int:
        row = await (
            Article.select(Article.id).where(Article.album == album.id, Article.code == catalogue_name(code)).first()
        )
        if row is None:
            raise ArticleNotFound(album=album.name, article=code)
        return row["id"]

    # --- PicHosting's read API -------------------------------------------------------------------

    async def album_names(self, principal: Principal) -> list[str]:
        self.policy.require_browse(principal)
        rows = await Album.select(Album.name).order_by(Album.name)
        return sorted((row["name"] for row in rows), key=natural_key)

    async def article_codes(self, album_name: str, principal: Principal) -> list[str]:
        self.policy.require_browse(principal)
        album = await self.album(album_name)
        rows = await Article.select(Article.code).where(Article.album == album.id)
        return sorted((row["code"] for row in rows), key=natural_key)

    async def files(self, album_name: str, article: str | None, principal: Principal) -> list[AlbumFile]:
        """The album's (or one article's) images, newest first."""
        self.policy.require_browse(principal)
        album = await self.album(album_name)
        if article is None:
            rows = await AlbumImage.raw(_ALBUM_FILES, album.id)
        else:
            rows = await AlbumImage.raw(_ARTICLE_FILES, await self._article_id(album, article))
        return [AlbumFile(StoredImage.from_row(row), album.name, row["code"]) for row in rows]

    async def count_album(self, album_name: str, principal: Principal) -> int:
        self.policy.require_browse(principal)
        count = await album_count(catalogue_name(album_name))  # kept by a trigger: one read, by name
        if count is None:
            raise AlbumNotFound(name=album_name)
        return count

    async def count_article(self, album_name: str, article: str, principal: Principal) -> int:
        self.policy.require_browse(principal)
        count = await album_count(catalogue_name(album_name), catalogue_name(article))
        if count is None:  # which of the two is missing: the album's 404 or the article's
            album = await self.album(album_name)
            raise ArticleNotFound(album=album.name, article=article)
        return count

    # --- Renaming, moving, reordering (admins and the album's creator) -------------------------

    async def rename_album(self, album_name: str, new_name: str, principal: Principal) -> str:
        """The album's new name (albums/names.py). A name another album has is a 409; the same
        name again changes nothing. Returns the name as stored."""
        album = await self.album(album_name)
        self._require_manage(album, principal, "rename", AlbumChangeForbidden)
        name = catalogue_name(new_name)
        if name != album.name:
            try:
                await Album.update({Album.name: name}).where(Album.id == album.id)
            except asyncpg.UniqueViolationError:
                raise AlbumNameTaken(name=name) from None
        self.log.info(f"album {album.name} renamed to {name} by {self._who(principal)}.", action="Success")
        return name

    async def rename_article(self, album_name: str, code: str, new_code: str, principal: Principal) -> str:
        """The article's new code within its album; a code the album has already is a 409."""
        album = await self.album(album_name)
        article_id = await self._article_id(album, code)
        self._require_manage(album, principal, "rename", AlbumChangeForbidden)
        old, new = catalogue_name(code), catalogue_name(new_code)
        if new != old:
            try:
                await Article.update({Article.code: new}).where(Article.id == article_id)
            except asyncpg.UniqueViolationError:
                raise ArticleCodeTaken(album=album.name, article=new) from None
        self.log.info(
            f"article {old} of album {album.name} renamed to {new} by {self._who(principal)}.", action="Success"
        )
        return new

    async def move_images(
        self, image_ids: list[int], album_name: str, article_code: str, principal: Principal
    ) -> MovedImages:
        """Images of any albums into one article (created when missing), after its last photo, in
        the order given. Manage rights on the target album and on every album an image leaves.
        All or nothing: a file the article already holds (same SHA-256, as uploaded or as stored)
        refuses the whole move with 409, as the ZIP upload would have skipped it. Images already in
        the article stay where they are. Articles left empty are deleted."""
        ids = _image_ids(image_ids)
        target = await self.album(album_name)
        code = catalogue_name(article_code)
        self._require_manage(target, principal, "move", AlbumChangeForbidden)
        async with AlbumImage._meta.db.transaction():
            await Article.raw(
                "INSERT INTO articles (album, code) VALUES ({}, {}) ON CONFLICT (album, code) DO NOTHING",
                target.id,
                code,
            )
            article_id = (
                await Article.select(Article.id).where(Article.album == target.id, Article.code == code).first()
            )["id"]
            sources = {
                row["article"]
                for row in await AlbumImage.raw("SELECT DISTINCT article FROM album_images WHERE image = ANY({})", ids)
            }
            await Article.raw(_LOCK_ARTICLES, sorted(sources | {article_id}))
            rows = {row["image"]: row for row in await AlbumImage.raw(_MOVED_ROWS + " FOR UPDATE OF ai", ids)}
            if missing := [image_id for image_id in ids if image_id not in rows]:
                raise ImageNotInAlbum(id=missing[0])
            for row in {row["album_id"]: row for row in rows.values()}.values():
                leaving = FoundAlbum(row["album_id"], row["album_name"], row["created_by_sub"])
                self._require_manage(leaving, principal, "move", AlbumChangeForbidden)
            moving = [rows[image_id] for image_id in ids if rows[image_id]["article"] != article_id]
            self._refuse_same_files(moving, await self._same_files(article_id, moving), target.name, code)
            if moving:
                base = await AlbumImage.raw(
                    "SELECT coalesce(max(position), 0) AS last FROM album_images WHERE article = {}", article_id
                )
                await AlbumImage.raw(
                    _MOVE_TO_ARTICLE, target.id, article_id, base[0]["last"], [row["image"] for row in moving]
                )
            left = sorted({row["article"] for row in moving})
            emptied = await Article.raw(
                "DELETE FROM articles a USING albums al WHERE al.id = a.album AND a.id = ANY({}) AND NOT EXISTS"
                " (SELECT 1 FROM album_images ai WHERE ai.article = a.id) RETURNING al.name, a.code",
                left,
            )
        report = MovedImages(target.name, code, len(moving), [(row["name"], row["code"]) for row in emptied])
        origins = sorted({f"article {row['code']} of album {row['album_name']}" for row in moving})
        removed = "".join(
            f"; article {article} of album {album} left empty, deleted" for album, article in report.emptied
        )
        self.log.info(
            f"{report.moved} image(s) moved to article {code} of album {target.name} by {self._who(principal)}"
            f" (from {', '.join(origins) or 'the same article'}{removed}).",
            action="Success",
        )
        return report

    async def _same_files(self, article_id: int, moving: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not moving:
            return []
        digests = sorted({row["source_sha256"] for row in moving} | {row["sha256"] for row in moving})
        ids = [row["image"] for row in moving]
        return await AlbumImage.raw(_SAME_FILES_IN_ARTICLE, article_id, ids, digests, digests)

    @staticmethod
    def _refuse_same_files(moving: list[dict[str, Any]], held: list[dict[str, Any]], album: str, article: str) -> None:
        """A moved file the article holds already, or two moved images that are the same file."""
        seen: dict[str, int] = {}
        for row in held:
            seen.update({row["source_sha256"]: row["image"], row["sha256"]: row["image"]})
        for row in moving:
            existing = seen.get(row["source_sha256"]) or seen.get(row["sha256"])
            if existing is not None:
                raise SameFileInArticle(album=album, article=article, id=row["image"], existing=existing)
            seen.update({row["source_sha256"]: row["image"], row["sha256"]: row["image"]})

    async def reorder_article(self, album_name: str, code: str, image_ids: list[int], principal: Principal) -> int:
        """The article's photo order, given whole: each of its images exactly once (else 422,
        naming what is missing, foreign or repeated). Returns how many images it holds."""
        album = await self.album(album_name)
        article_id = await self._article_id(album, code)
        self._require_manage(album, principal, "reorder", AlbumChangeForbidden)
        async with AlbumImage._meta.db.transaction():
            current = await self._locked_order(article_id)
            order = list(image_ids)
            repeated = sorted(image_id for image_id, times in Counter(order).items() if times > 1)
            missing = [image_id for image_id in current if image_id not in set(order)]
            extra = sorted(set(order) - set(current))
            if repeated or missing or extra:
                raise OrderMismatch(
                    album=album.name,
                    article=catalogue_name(code),
                    count=len(current),
                    missing=_listed(missing),
                    extra=_listed(extra),
                    repeated=_listed(repeated),
                )
            await AlbumImage.raw(_SET_ORDER, order)
        self.log.info(
            f"article {catalogue_name(code)} of album {album.name} reordered by {self._who(principal)}"
            f" ({len(order)} images).",
            action="Success",
        )
        return len(order)

    async def shift_image(self, album_name: str, code: str, image_id: int, step: int, principal: Principal) -> int:
        """One image `step` places earlier (negative) or later in its article's photo order (the
        page's buttons); at either end it stays. Returns its new place, from 0."""
        album = await self.album(album_name)
        article_id = await self._article_id(album, code)
        self._require_manage(album, principal, "reorder", AlbumChangeForbidden)
        async with AlbumImage._meta.db.transaction():
            order = await self._locked_order(article_id)
            if image_id not in order:
                raise ImageNotInAlbum(id=image_id)
            place = order.index(image_id)
            new_place = min(max(place + step, 0), len(order) - 1)
            order.insert(new_place, order.pop(place))
            if new_place != place:
                await AlbumImage.raw(_SET_ORDER, order)
        if new_place != place:
            self.log.info(
                f"image #{image_id} moved from place {place + 1} to {new_place + 1} in article {catalogue_name(code)}"
                f" of album {album.name} by {self._who(principal)}.",
                action="Success",
            )
        return new_place

    async def _locked_order(self, article_id: int) -> list[int]:
        """The article's image ids in photo order, the article's row and its images' rows locked."""
        await Article.raw(_LOCK_ARTICLES, [article_id])
        rows = await AlbumImage.raw(
            "SELECT image FROM album_images WHERE article = {} ORDER BY position, image FOR UPDATE", article_id
        )
        return [row["image"] for row in rows]

    # --- Deleting --------------------------------------------------------------------------------

    async def delete_album(self, album_name: str, principal: Principal) -> int:
        """The album, its articles and its images (files and thumbnails too). Returns how many images."""
        album = await self.album(album_name)
        self._require_manage(album, principal, "delete")
        removed = await self.remove_images(album.id, self.granted(principal, album.name))
        await Album.delete().where(Album.id == album.id)
        self.log.info(
            f"album {album.name} deleted by {principal.name or 'the operator'} ({removed} images).", action="Success"
        )
        return removed

    async def delete_article(self, album_name: str, article: str, principal: Principal) -> int:
        album = await self.album(album_name)
        article_id = await self._article_id(album, article)
        self._require_manage(album, principal, "delete")
        removed = await self.remove_images(album.id, self.granted(principal, album.name), article_id=article_id)
        await Article.delete().where(Article.id == article_id)
        self.log.info(
            f"article {article} of album {album.name} deleted by {principal.name or 'the operator'}"
            f" ({removed} images).",
            action="Success",
        )
        return removed

    def _require_manage(
        self, album: FoundAlbum, principal: Principal, action: str, refusal: type[AlbumForbidden] = AlbumForbidden
    ) -> None:
        self.policy.require_upload(principal)  # the usual 401 for a visitor who must sign in
        if not self.policy.may_manage_album(principal, album.created_by_sub):
            raise refusal(name=album.name, action=action, who=principal.name or "anonymous")

    @staticmethod
    def _who(principal: Principal) -> str:
        return principal.name or "the operator"

    @staticmethod
    def granted(principal: Principal, album: str) -> str:
        return f"{principal.name or 'the operator'} (album {album})"

    async def remove_images(
        self, album_id: int, granted_by: str, article_id: int | None = None, keep: set[int] = frozenset()
    ) -> int:
        """Each image through ImageService's crash-safe delete (marker, row, files); the policy was
        asked by the caller. Articles left empty go too."""
        query = AlbumImage.select(AlbumImage.image).where(AlbumImage.album == album_id)
        if article_id is not None:
            query = query.where(AlbumImage.article == article_id)
        ids = [row["image"] for row in await query if row["image"] not in keep]
        credentials = DeleteCredentials(granted_by=granted_by)
        removed = 0
        for image_id in ids:
            try:
                await self.images.delete(image_id, credentials)
            except ImageHostError as error:  # already gone (a concurrent delete): nothing to do
                self.log.warning(
                    f"image #{image_id} of album {album_id} not deleted: {error.log_line()}", action="Storage"
                )
                continue
            removed += 1
        await Article.raw(
            "DELETE FROM articles a WHERE a.album = {} AND NOT EXISTS"
            " (SELECT 1 FROM album_images ai WHERE ai.article = a.id)",
            album_id,
        )
        return removed


def _image_ids(image_ids: list[int]) -> list[int]:
    """The ids of a move, each once, in the order given."""
    ids = list(dict.fromkeys(image_ids))
    if not ids:
        raise InvalidParameter(field="image_ids", reason="at least one image id")
    if len(ids) > MOST_MOVED:
        raise InvalidParameter(field="image_ids", reason=f"at most {MOST_MOVED} ids at once")
    if unknown := [image_id for image_id in ids if not 0 < image_id <= LARGEST_IMAGE_ID]:
        raise ImageNotInAlbum(id=unknown[0])  # no image has it (ids are PostgreSQL integers)
    return ids


def _listed(ids: list[int]) -> str:
    """Ids for a message: the first few, then how many more."""
    if not ids:
        return "—"
    shown = ", ".join(str(image_id) for image_id in ids[:10])
    return shown + (f" (+{len(ids) - 10})" if len(ids) > 10 else "")
