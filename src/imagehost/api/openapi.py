"""The JSON API described: Litestar's OpenAPI at /schema/openapi.json, the shapes of every answer,
the multipart bodies (which handlers read themselves, so Litestar cannot see them), and a Swagger UI
page at /schema built from vendored files only (no CDN, no inline script: the pages' CSP holds)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any, Literal

from litestar import Request
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.openapi.spec import Components, Operation, RequestBody, Schema, SecurityScheme
from litestar.openapi.spec.enums import OpenAPIType
from litestar.openapi.spec.media_type import OpenAPIMediaType

SWAGGER = "/static/swagger-ui-5.35.0"


# --- The shapes of the answers ------------------------------------------------------------------


@dataclass
class ImageAnswer:
    """An image, as every JSON route describes it (images/links.py: image_json)."""

    id: int
    filename: str
    original_name: str
    size: int
    size_kb: int
    file_type: str
    content_type: str
    upload_time: str
    width: int | None
    height: int | None
    url: str
    page_url: str
    download_url: str
    thumbnails: dict[str, str]


@dataclass
class ImagePageAnswer(ImageAnswer):
    status: Literal["success"] = "success"


@dataclass
class UploadAnswer(ImageAnswer):
    delete_url: str = ""
    status: Literal["success"] = "success"


@dataclass
class ConversionAnswer(ImageAnswer):
    quality: int | None = None
    size_bytes: int = 0
    source_format: str | None = None


@dataclass
class Pagination:
    total_pages: int
    total_items: int


@dataclass
class CatalogueAnswer:
    status: Literal["success"]
    page: int
    pagination: Pagination
    data: list[ImageAnswer]


@dataclass
class RecentUploadsAnswer:
    status: Literal["success"]
    data: list[ImageAnswer]


@dataclass
class DeleteAnswer:
    status: Literal["success"]
    message: str


@dataclass
class ErrorAnswer:
    """Every refusal: the sentence is for a person, in the request's language."""

    status: Literal["error"]
    error: str


@dataclass
class HealthAnswer:
    status: str
    reason: str | None = None


@dataclass
class TokenAnswer:
    """A personal API token, never its secret (that is in the creation answer only)."""

    id: int
    name: str
    prefix: str
    owner: str
    created_at: str
    last_used_at: str | None
    revoked: bool
    expires_at: str | None
    expired: bool


@dataclass
class TokenListAnswer:
    status: Literal["success"]
    tokens: list[TokenAnswer]


@dataclass
class RevokedTokenAnswer(TokenAnswer):
    status: Literal["success"] = "success"


@dataclass
class CreatedTokenAnswer(TokenAnswer):
    token: str = ""
    status: Literal["success"] = "success"


@dataclass
class EndAccessAnswer:
    status: Literal["success"]
    person: str
    name: str
    revoked_tokens: int


ERROR_REASONS = {
    400: "The request is wrong (no file, a damaged image, a bad parameter)",
    401: "Sign-in or a valid API token is required",
    403: "Not allowed for this caller (role, delete key, cross-site request)",
    404: "No such image or page",
    408: "The body arrived too slowly",
    413: "Too large (file, body or pixels)",
    415: "Not an accepted image format",
    422: "A parameter is out of range, or the image needs more memory or time than a worker has",
    429: "Too many requests from this address",
    501: "An answer format this route does not give (oEmbed: only JSON)",
    503: "The database or the image store is unavailable, or the service is stopping",
    507: "The image store is full",
}


def answers(status: int, shape: Any, description: str, *errors: int) -> dict[int, ResponseSpec]:
    """The success answer and the error answers of one route (all errors share ErrorAnswer)."""
    described = {status: ResponseSpec(data_container=shape, description=description)}
    for code in errors:
        described[code] = ResponseSpec(data_container=ErrorAnswer, description=ERROR_REASONS[code])
    return described


def binary(status: int, media_type: str, description: str, *errors: int) -> dict[int, ResponseSpec]:
    described = {status: ResponseSpec(data_container=bytes, media_type=media_type, description=description)}
    for code in errors:
        described[code] = ResponseSpec(data_container=ErrorAnswer, description=ERROR_REASONS[code])
    return described


# --- Multipart bodies ----------------------------------------------------------------------------


def form_body(*, required: tuple[str, ...] = (), media_types: tuple[str, ...], **fields: Schema) -> type[Operation]:
    """An Operation whose request body is a form with these fields (the handlers read the form
    themselves, to bound what they hold in memory, so Litestar cannot infer it)."""
    schema = Schema(type=OpenAPIType.OBJECT, properties=dict(fields), required=list(required) or None)
    body = RequestBody(
        required=bool(required), content={media_type: OpenAPIMediaType(schema=schema) for media_type in media_types}
    )

    @dataclass
    class FormOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = body

    return FormOperation


def multipart(**fields: Schema) -> type[Operation]:
    """A multipart upload: the field `file` and any others."""
    return form_body(required=("file",), media_types=("multipart/form-data",), **fields)


def form(**fields: Schema) -> type[Operation]:
    """A plain form (a browser's, or curl -d)."""
    return form_body(media_types=("application/x-www-form-urlencoded", "multipart/form-data"), **fields)


def text(description: str, *choices: str) -> Schema:
    return Schema(type=OpenAPIType.STRING, description=description, enum=list(choices) or None)


FILE = Schema(type=OpenAPIType.STRING, format="binary", description="The image (JPEG, PNG or GIF)")  # type: ignore[arg-type]


def whole(description: str, low: int, high: int) -> Schema:
    return Schema(type=OpenAPIType.INTEGER, minimum=low, maximum=high, description=description)


# --- The page ------------------------------------------------------------------------------------


class SwaggerPage(OpenAPIRenderPlugin):
    """Swagger UI from /static (vendored), started by /static/schema.js: no inline script."""

    def __init__(self) -> None:
        super().__init__(path="/", favicon="", style="")

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        spec_url = escape(self.get_openapi_json_route(request), quote=True)
        return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>ImageHost API</title>
  <link rel="stylesheet" href="{SWAGGER}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-spec-url="{spec_url}"></div>
  <script src="{SWAGGER}/swagger-ui-bundle.js"></script>
  <script src="/static/schema.js"></script>
</body>
</html>
""".encode()


def openapi_config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="ImageHost",
        version=version,
        description=(
            "Uploads, the catalogue, downloads, deletes, the conversion API, the log, tokens and"
            " operations. Every page URL also answers HTML (a browser) and htmx fragments; this"
            " describes the JSON answers, which API clients get (no `Accept: text/html`)."
        ),
        path="/schema",
        render_plugins=[SwaggerPage()],
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="API_TOKENS, ADMIN_TOKEN or a personal token (ih_...)",
                )
            }
        ),
        security=[{"bearer": []}, {}],
        use_handler_docstrings=True,
    )
