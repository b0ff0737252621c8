"""create_app(settings) builds the whole application. Nothing happens at import time."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
import jinja2
from litestar import Litestar, Request, Router
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.static_files import create_static_files_router
from litestar.stores.registry import StoreRegistry
from litestar.template import TemplateConfig

from imagehost import __version__
from imagehost.accounts.controllers import ProfileController, callback, login, logout
from imagehost.accounts.identity import principal_of_request
from imagehost.accounts.oidc import OIDCClient
from imagehost.accounts.personal_tokens import PersonalTokens
from imagehost.accounts.session import move_old_session_cookie, session_cookie_name
from imagehost.albums.controllers import AlbumController, AlbumManageController, ArchiveUploadController
from imagehost.albums.intake import ZIP_JOB
from imagehost.albums.pages import AlbumManagePagesController, AlbumPagesController
from imagehost.albums.service import AlbumService
from imagehost.api.controllers import ConversionController, read_logs
from imagehost.api.openapi import openapi_config
from imagehost.api.tokens import require_api_token
from imagehost.database import Database
from imagehost.embeds.codes import embed_codes
from imagehost.embeds.controllers import EmbedController
from imagehost.exports.controllers import AlbumDownloadController, CatalogueExportController, LinkSheetController
from imagehost.exports.service import ExportService
from imagehost.images.controllers import (
    CatalogueController,
    DeleteController,
    UploadController,
)
from imagehost.images.formats import accept_attribute
from imagehost.images.service import ImageService, human_size
from imagehost.images.storage import ImageStore
from imagehost.images.thumbnail_jobs import THUMBNAILS_JOB
from imagehost.images.workers import image_workers
from imagehost.logging import action_log, configure_logging
from imagehost.metrics import instruments
from imagehost.metrics.controllers import ROUTES as METRICS_ROUTES
from imagehost.metrics.controllers import http_metrics
from imagehost.ops.routes import ROUTE_HANDLERS as OPS_ROUTES
from imagehost.pages.controllers import choose_language, health, home, ready
from imagehost.previews.controllers import OEmbedController
from imagehost.settings import SUPPORTED_LANGUAGES, Settings
from imagehost.storage import image_files
from imagehost.tasks.queue import THUMBNAILS, UPLOADS, JobQueue
from imagehost.web.deadline import body_deadline
from imagehost.web.errors import EXCEPTION_HANDLERS
from imagehost.web.guard import before_request
from imagehost.web.i18n import LANGUAGE_NAMES, Translator, load_translations
from imagehost.web.security_headers import security_headers
from imagehost.web.stores import SharedStores

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = PROJECT_ROOT / "templates"
STATIC_DIR = PROJECT_ROOT / "static"


def template_engine(translator: Translator, settings: Settings) -> JinjaTemplateEngine:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
    )
    environment.install_gettext_callables(translator.gettext, translator.ngettext, newstyle=True)  # type: ignore[attr-defined]
    environment.globals.update(
        current_language=translator.current,
        language_names=LANGUAGE_NAMES,
        languages=SUPPORTED_LANGUAGES,
        max_upload=human_size(settings.max_upload_bytes),
        allowed_formats=", ".join(settings.allowed_formats),
        accepted_content_types=accept_attribute(settings.allowed_formats),
        version=__version__,
        current_principal=principal_of_request,
        sign_in_enabled=settings.oidc_enabled,
        embed_codes=embed_codes,
    )
    return JinjaTemplateEngine.from_environment(environment)


def _is_unsafe(request: Request) -> bool:
    return request.method not in {"GET", "HEAD", "OPTIONS"} or request.url.path == "/login"


def rate_limit(name: str, per_minute: int) -> list[Any]:
    """A per-client limit with its own store (a namespace in Redis or PostgreSQL, shared by every process
    and instance: see `stores=` in create_app); uploads count POSTs only, sign-in counts /login."""
    if per_minute <= 0:
        return []
    config = RateLimitConfig(
        rate_limit=("minute", per_minute), check_throttle_handler=_is_unsafe, store=f"{name}_rate_limit"
    )
    return [config.middleware]


def body_deadlines(seconds: float, longer: dict[str, float]) -> Any:
    """body_deadline, with a longer one on some paths (ZIP archives: ZIP_READ_TIMEOUT_SECONDS)."""

    def middleware(app: Any) -> Any:
        usual = body_deadline(seconds)(app)
        chosen = {path: body_deadline(limit)(app) for path, limit in longer.items()}

        async def bounded(scope: Any, receive: Any, send: Any) -> None:
            await chosen.get(scope.get("path", ""), usual)(scope, receive, send)

        return bounded

    return middleware


def create_app(settings: Settings) -> Litestar:
    """Image work runs in WORKER_PROCESSES isolated processes started with the app (threads when 0)."""
    configure_logging(settings.log_dir, settings.log_max_bytes, settings.log_backups, settings.log_file_name)
    log = action_log()
    store = ImageStore(settings.images_dir)
    service = ImageService(settings, store, files=image_files(settings, store))
    albums = AlbumService(service)
    exports = ExportService(albums)
    translator = Translator(load_translations(), settings.default_language)

    # Starts without PostgreSQL if it must (pages then answer 503), and settles what a crash left
    # half-done in the image store each time it connects.
    async def finish_interrupted() -> None:
        await service.finish_interrupted()
        await albums.intake.finish_interrupted()  # ZIP jobs whose task will not run again: marked failed

    database = Database(settings.database_url, on_connect=finish_interrupted)
    shared = SharedStores(settings.redis_url, database)
    # ZIP batches and thumbnail batches are tasks of the queue: this process's worker takes them,
    # and any other instance's.
    queue = JobQueue(settings, [ZIP_JOB, THUMBNAILS_JOB], after_giving_up=albums.intake.finish_interrupted)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        try:
            removed = await anyio.to_thread.run_sync(store.prepare)
        except OSError as error:  # a read-only or missing volume: serve anyway, /ready says why
            log.error(f"cannot prepare the images folder: {error}.", action="Storage")
        else:
            if removed:
                log.warning(f"removed {removed} stray temporary file(s) left by an earlier run.", action="Storage")
        await database.open()
        try:
            async with image_workers(settings) as workers:
                service.workers = workers  # processes, or threads with WORKER_PROCESSES=0
                await queue.open()
                albums.intake.queue = queue
                if settings.job_concurrency > 0:
                    queue.start_worker(
                        [UPLOADS, THUMBNAILS], settings.job_concurrency, {"intake": albums.intake, "images": service}
                    )
                try:
                    yield
                finally:
                    # Jobs running here are cut (their entries in flight finish) and go back to the
                    # queue for another worker, or this one's next start.
                    await queue.close()
        finally:
            await database.close()
            await shared.close()
            instruments.process_ended()

    session = CookieBackendConfig(
        secret=hashlib.sha256(settings.secret_key.encode()).digest(),
        key=session_cookie_name(settings),
        max_age=365 * 24 * 3600,
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
        # Direct links, static files and probes never carry or set a cookie.
        # With PRIVATE_IMAGES the app-served ones (just run) must see who asks: they read the session.
        exclude=[*([] if settings.private_images else [r"^/images/.+"]), r"^/static/", r"^/health", r"^/ready"],
    )

    return Litestar(
        route_handlers=[
            home,
            health,
            ready,
            choose_language,
            # Sign-in and uploads are limited per client address (429 with Retry-After past the limit).
            Router(
                path="/", route_handlers=[login, callback], middleware=rate_limit("login", settings.login_rate_limit)
            ),
            logout,
            ProfileController,
            Router(
                path="/",
                route_handlers=[
                    UploadController,
                    # ZIP archives: their own body limit (ZIP_MAX_BYTES); one archive counts as one upload.
                    Router(
                        path="/",
                        route_handlers=[ArchiveUploadController],
                        request_max_body_size=settings.zip_max_request_bytes,
                    ),
                ],
                middleware=rate_limit("upload", settings.upload_rate_limit),
            ),
            AlbumController,
            AlbumManageController,
            AlbumPagesController,
            AlbumManagePagesController,
            CatalogueController,
            DeleteController,
            LinkSheetController,
            CatalogueExportController,
            AlbumDownloadController,
            EmbedController,
            OEmbedController,
            # The conversion API and the log: token only, and a larger body limit on this route alone.
            Router(
                path="/",
                route_handlers=[ConversionController, read_logs],
                guards=[require_api_token],
                request_max_body_size=settings.api_max_request_bytes,
            ),
            *OPS_ROUTES,
            *METRICS_ROUTES,
            create_static_files_router(path="/static", directories=[STATIC_DIR], send_as_attachment=False),
        ],
        dependencies={
            "images": Provide(lambda: service, sync_to_thread=False),
            "albums": Provide(lambda: albums, sync_to_thread=False),
            "exports": Provide(lambda: exports, sync_to_thread=False),
        },
        template_config=TemplateConfig(engine=template_engine(translator, settings)),
        middleware=[
            http_metrics().middleware,  # first: it times and counts the whole answer, by route template
            *move_old_session_cookie(settings),
            session.middleware,
            body_deadlines(settings.upload_read_timeout_seconds, {"/api/upload": settings.zip_read_timeout_seconds}),
        ],
        before_send=[security_headers(settings)],
        before_request=before_request,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=settings.max_request_bytes,
        lifespan=[lifespan],
        # Every store Litestar asks for by name (upload_rate_limit, login_rate_limit) is a namespace of
        # the shared one (REDIS_URL, else PostgreSQL): the counts are the same in every process and machine.
        stores=StoreRegistry(default_factory=shared.named),
        state=State(
            {
                "settings": settings,
                "database": database,
                "translator": translator,
                "image_service": service,
                "oidc": OIDCClient(settings) if settings.oidc_enabled else None,
                "personal_tokens": PersonalTokens(service.policy),
            }
        ),
        openapi_config=openapi_config(__version__),
    )


def app_from_environment() -> Litestar:
    """The uvicorn factory: `uvicorn --factory imagehost.app:app_from_environment`."""
    return create_app(Settings.from_env())
