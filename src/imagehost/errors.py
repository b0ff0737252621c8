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
