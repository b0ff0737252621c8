"""Domain errors. Services raise them; the web layer alone decides status codes and bodies.

Each message is an English template (also the gettext msgid); `params` fill it in.
"""

from __future__ import annotations

from typing import Any


def N_(message: str) -> str:
    """Mark a string for translation without translating it here (Babel extracts N_ calls)."""
    return message


def _rebuild(cls: type[ImageHostError], params: dict[str, Any]) -> ImageHostError:
    return cls(**params)


class ImageHostError(Exception):
    template = N_("Something went wrong.")
    # The app.log wording (English, never translated); defaults to the message itself.
    log_template = ""
    log_action = "Error"
    # Seconds after which trying again makes sense, sent as Retry-After; None: no such advice.
    retry_after: int | None = None

    def __init__(self, **params: Any) -> None:
        self.params = params
        super().__init__(self.english())

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (the image workers): rebuild them from their params.
        return (_rebuild, (type(self), self.params))

    def english(self) -> str:
        return self.template.format(**self.params)

    def log_line(self) -> str:
        return (self.log_template or self.template).format(**self.params)


class NoFileGiven(ImageHostError):
    template = N_("No file was sent: choose an image to upload.")
    log_template = "upload refused: no file sent."


class EmptyFile(ImageHostError):
    template = N_("The file {filename} is empty.")
    log_template = "empty file ({filename})."


class UnsupportedFormat(ImageHostError):
    template = N_("The file {filename} is not a supported image: only {formats} are accepted.")
    log_template = "unsupported file format ({filename})."


class UndecodableImage(ImageHostError):
    template = N_("The file {filename} is damaged or incomplete and cannot be read as an image.")
    log_template = "damaged or incomplete image ({filename})."


class TooManyPixels(ImageHostError):
    template = N_("The image {filename} is too large: {pixels} pixels, the limit is {limit}.")
    log_template = "too many pixels: {pixels}, limit {limit} ({filename})."


class FileTooLarge(ImageHostError):
    template = N_("The file {filename} is too large: the limit is {limit}.")
    log_template = "file too large, limit {limit} ({filename})."


class ImageNotFound(ImageHostError):
    template = N_("There is no image {name}.")
    log_template = "image {name} not found."


class DeleteForbidden(ImageHostError):
    template = N_("You may not delete image {name}: only its uploader (or an operator) can.")
    log_template = "delete of image {name} by {who} refused: not theirs and no valid delete key."


class StorageUnavailable(ImageHostError):
    template = N_("The image store is not available right now: please try again later.")
    log_template = "image store unavailable: {reason}."
    part = "the image store"  # what is away, for the log of a job the outage cut


class StorageFull(ImageHostError):
    template = N_("There is no room left for new images on this server: please try again later.")
    log_template = "image store full: {reason}."


class UploadTooSlow(ImageHostError):
    template = N_("The upload took longer than {seconds} seconds to arrive and was stopped: please try again.")
    log_template = "{method} {path} from {client} stopped: the body took longer than {seconds} s to arrive."


class CrossSiteRequestRefused(ImageHostError):
    template = N_("This request came from another site and was refused. Open ImageHost itself and try again.")
    log_template = "cross-site {method} {path} refused (from {origin})."


class PageNotFound(ImageHostError):
    template = N_("There is no page at this address.")
    log_template = "no page at {path}."


class RequestTooLarge(ImageHostError):
    template = N_("The upload is too large: the limit is {limit}.")
    log_template = "upload refused: request body over {limit}."


class DatabaseUnavailable(ImageHostError):
    template = N_("The database is not available right now: please try again in a moment.")
    # The loss itself is logged once by imagehost.database; this is each request it costs.
    log_template = "request refused, the database is unavailable: {reason}."
    log_action = "Database"
    part = "the database"


# A part the service needs is away for now: what it costs is tried again later, never refused for good.
OUTAGES = (StorageUnavailable, DatabaseUnavailable)


class ImageProcessingFailed(ImageHostError):
    template = N_("The file {filename} could not be processed: it needs too much memory or time. Try a smaller image.")
    log_template = "processing failed ({reason}) ({filename})."


class InvalidParameter(ImageHostError):
    template = N_("The field {field} is invalid: {reason}.")
    log_template = "invalid field {field}: {reason}."


class Unauthorized(ImageHostError):
    template = N_("A valid API token is required: send it as Authorization: Bearer <token>.")
    log_template = "{method} {path} refused: missing or wrong API token."


class ServiceStopping(ImageHostError):
    template = N_("ImageHost is restarting: please try again in a moment.")
    log_template = "upload of {filename} interrupted: the service is stopping."


class ExportsBusy(ImageHostError):
    """More exports at once than EXPORT_CONCURRENCY: refused at once, with Retry-After."""

    template = N_(
        "Too many exports are being made right now (at most {limit} at once): please try again in {seconds} seconds."
    )
    log_template = "{what} by {who} refused: {limit} export(s) already running."
    log_action = "Refused"

    @property
    def retry_after(self) -> int:  # type: ignore[override]
        return int(self.params["seconds"])


class SignInRequired(ImageHostError):
    template = N_("Please sign in to do this.")
    log_template = "anonymous {action} refused: sign-in required."


class ActionForbidden(ImageHostError):
    template = N_("You are signed in as {name}, but your role ({role}) does not allow this.")
    log_template = "{action} by {name} refused: role {role}."


class SignInFailed(ImageHostError):
    template = N_("Sign-in failed: {reason}. Please try again.")
    log_template = "sign-in failed: {reason}."
    log_action = "Login"


class SignInUnavailable(ImageHostError):
    template = N_("Sign-in is not configured on this server.")
    log_template = "sign-in attempted but OIDC is not configured."


class NoRoleAssigned(ImageHostError):
    template = N_(
        "You are signed in as {name}, but you have none of the roles this site uses, so you can do only what"
        " visitors who are not signed in can do. Ask an administrator for a role."
    )
    log_template = "{action} by {name} refused: signed in without any role."


class TokenNotFound(ImageHostError):
    template = N_("There is no API token {id} of yours.")
    log_template = "API token {id} not found."


class TokenRefused(ImageHostError):
    template = N_("This API token is not valid: it may have been revoked.")
    log_template = "{method} {path} refused: unknown or revoked API token."


class BadQueryParameter(ImageHostError):
    template = N_("The parameter {name} must be a whole number from {low} to {high}.")
    log_template = "query parameter {name} refused: {value!r} is not a whole number from {low} to {high}."


class StoredNameRefused(ImageNotFound):
    """A row (or a request) names a file that cannot be a stored name: never opened, answered as 404."""

    log_template = "refused to open {name}: not a stored name (a damaged or forged row?)."


class TokenExpired(ImageHostError):
    template = N_("This API token expired on {date}. Create a new one on your profile page.")
    log_template = "API token {prefix}… of {owner} refused: it expired on {date}."


class TokenSuspended(ImageHostError):
    template = N_(
        "This API token is suspended: its owner has not signed in for more than {days} days."
        " Signing in again makes it work again."
    )
    log_template = "API token {prefix}… of {owner} refused: the owner has not signed in for more than {days} days."


class PersonNotFound(ImageHostError):
    template = N_("There is no person {id} who has signed in here.")
    log_template = "person {id} not found."


# --- Albums, articles and ZIP archives (albums/) ---------------------------------------------------


class InvalidName(ImageHostError):
    template = N_(
        "The name “{name}” cannot be used for an album or article: names are 1 to 200 characters long,"
        " without / or control characters, and not . or .."
    )
    log_template = "album or article name refused: {name!r}."


class AlbumNotFound(ImageHostError):
    template = N_("There is no album {name}.")
    log_template = "album {name} not found."


class ArticleNotFound(ImageHostError):
    template = N_("There is no article {article} in the album {album}.")
    log_template = "article {article} of album {album} not found."


class AlbumExists(ImageHostError):
    template = N_(
        "There is already an album {name}. Without signing in you may only create new albums: choose another name."
    )
    log_template = "anonymous upload into existing album {name} refused."


class AlbumForbidden(ImageHostError):
    template = N_("Only an administrator or the creator of the album {name} may replace or delete its images.")
    log_template = "{action} of album {name} by {who} refused: not an admin or its creator."


class NoArchiveGiven(ImageHostError):
    template = N_("No archive was sent: send a ZIP file in the field zipfile.")
    log_template = "archive upload refused: no file sent."


class ArchiveUnreadable(ImageHostError):
    template = N_("The file {filename} is not a ZIP archive, or its table of contents is damaged.")
    log_template = "archive {filename} refused: not a ZIP or a damaged directory ({reason})."


class ArchiveEmpty(ImageHostError):
    template = N_("The archive {filename} has no files in it.")
    log_template = "archive {filename} refused: no entries."


class ArchiveTooManyEntries(ImageHostError):
    template = N_("The archive {filename} has too many entries: {count}, the limit is {limit}.")
    log_template = "archive {filename} refused: {count} entries, limit {limit}."


class ArchiveTooLarge(ImageHostError):
    template = N_("The archive {filename} unpacks to {size}: the limit is {limit}.")
    log_template = "archive {filename} refused: unpacks to {size}, limit {limit}."


class ArchiveOverlapping(ImageHostError):
    template = N_("The archive {filename} is malformed: its entries overlap (a zip bomb). Nothing was stored.")
    log_template = "archive {filename} refused: overlapping entries ({reason})."


class EntryRefused(ImageHostError):
    """One entry of an archive that is not unpacked; the other entries go on."""

    template = N_("The entry {entry} cannot be read.")
    log_template = "entry {entry} refused."


class EntryEncrypted(EntryRefused):
    template = N_("The entry {entry} is encrypted: encrypted files are not unpacked.")
    log_template = "entry {entry} refused: encrypted."


class EntryIsLink(EntryRefused):
    template = N_("The entry {entry} is a symbolic link, not a file.")
    log_template = "entry {entry} refused: symbolic link."


class EntryIsArchive(EntryRefused):
    template = N_("The entry {entry} is an archive inside the archive: nested archives are not unpacked.")
    log_template = "entry {entry} refused: nested archive."


class EntryDamaged(EntryRefused):
    template = N_("The entry {entry} is damaged and cannot be unpacked.")
    log_template = "entry {entry} refused: damaged ({reason})."


class EntryTooCompressed(EntryRefused):
    template = N_("The entry {entry} is compressed more than {ratio} to 1: it is refused as a possible zip bomb.")
    log_template = "entry {entry} refused: compression ratio over {ratio}."


class EntryTooDeep(EntryRefused):
    template = N_("The entry {entry} is more than {depth} folders deep.")
    log_template = "entry {entry} refused: deeper than {depth} folders."


class EntryNameTooLong(EntryRefused):
    template = N_("A name in the entry {entry} is longer than {limit} characters.")
    log_template = "entry {entry} refused: a name longer than {limit} characters."


class MissingParameter(ImageHostError):
    template = N_("The parameter {name} is required.")
    log_template = "parameter {name} missing."


class JobNotFound(ImageHostError):
    template = N_("There is no such upload job.")
    log_template = "upload job not found."


class JobsUnavailable(ImageHostError):
    template = N_("ZIP uploads cannot start right now: the job queue is not available. Please try again in a moment.")
    log_template = "ZIP job refused: the job queue is not available."
    log_action = "Jobs"


class JobInterrupted(ImageHostError):
    template = N_(
        "The upload was interrupted by a restart of the service: the images stored before it are kept and listed."
    )
    log_template = "upload job interrupted by a restart."


class ArchiveTooLargeForPage(ImageHostError):
    template = N_(
        "The archive {filename} is larger than {limit}, the limit of this page: send it to /api/upload,"
        " which takes large archives."
    )
    log_template = "archive {filename} over {limit} refused on /upload (for /api/upload)."


# --- Managing albums: rename, move, reorder (albums/service.py) ------------------------------------


class AlbumChangeForbidden(AlbumForbidden):
    template = N_(
        "Only an administrator or the creator of the album {name} may rename it or move or reorder its images."
    )


class AlbumNameTaken(ImageHostError):
    template = N_("There is already an album {name}: choose another name.")
    log_template = "album name {name} refused: another album has it."


class ArticleCodeTaken(ImageHostError):
    template = N_("There is already an article {article} in the album {album}: choose another code.")
    log_template = "article code {article} refused: the album {album} has it already."


class ImageNotInAlbum(ImageHostError):
    template = N_("There is no image {id} in any album.")
    log_template = "image {id} not found in any album."


class SameFileInArticle(ImageHostError):
    template = N_(
        "The article {article} of the album {album} already holds the same file as image {id} (image {existing}):"
        " nothing was moved."
    )
    log_template = (
        "move of image {id} into article {article} of album {album} refused: the same file is image {existing}."
    )


class OrderMismatch(ImageHostError):
    template = N_(
        "The new order must name each of the {count} images of the article {article} exactly once"
        " (missing: {missing}; not in the article: {extra}; repeated: {repeated})."
    )
    log_template = (
        "reorder of article {article} of album {album} refused: missing {missing}, extra {extra}, repeated {repeated}."
    )


class NulInQuery(ImageHostError):
    template = N_("The address holds a NUL character (%00), which no name or filter can contain.")
    log_template = "query string with a NUL character refused."


class NothingToEmbed(ImageHostError):
    template = N_(
        "There is nothing of this site to embed at {url}: give the address of an image, an album or an article here."
    )
    log_template = "oEmbed: nothing to embed at {url!r}."


class OEmbedFormatUnsupported(ImageHostError):
    template = N_("oEmbed answers are given in JSON only (format=json), not {format}.")
    log_template = "oEmbed format {format!r} refused."
