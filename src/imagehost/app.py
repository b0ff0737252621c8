"""create_app(settings) builds the whole application. Nothing happens at import time."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
import jinja2
from litestar import Litestar
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig
from piccolo.engine.postgres import PostgresEngine

from imagehost import __version__
from imagehost.images.controllers import CatalogueController, DeleteController, UploadController
from imagehost.images.piccolo_app import APP_CONFIG as IMAGES_APP
from imagehost.images.service import ImageService, human_size
from imagehost.images.storage import ImageStore
from imagehost.logging import action_log, configure_logging
from imagehost.pages.controllers import choose_language, health, home, ready
from imagehost.settings import SUPPORTED_LANGUAGES, Settings
from imagehost.web.errors import EXCEPTION_HANDLERS
from imagehost.web.guard import before_request
from imagehost.web.i18n import LANGUAGE_NAMES, Translator, load_translations

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = PROJECT_ROOT / "templates"
STATIC_DIR = PROJECT_ROOT / "static"
TABLES = [*IMAGES_APP.table_classes]


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
        version=__version__,
    )
    return JinjaTemplateEngine.from_environment(environment)


def create_app(settings: Settings) -> Litestar:
    configure_logging(settings.log_dir)
    log = action_log()
    store = ImageStore(settings.images_dir)
    service = ImageService(settings, store)
    translator = Translator(load_translations(), settings.default_language)

    @asynccontextmanager
    async def database(app: Litestar) -> AsyncIterator[None]:
        removed = await anyio.to_thread.run_sync(store.prepare)
        if removed:
            log.warning(f"removed {removed} stray temporary file(s) left by an earlier run.", action="Storage")
        # Built here, not at import: constructing the engine already talks to the server.
        engine = await anyio.to_thread.run_sync(lambda: PostgresEngine(config={"dsn": settings.database_url}))
        for table in TABLES:
            table._meta.db = engine
        try:
            await engine.start_connection_pool(min_size=1, max_size=10)
        except Exception as error:
            log.error(f"cannot connect to PostgreSQL: {type(error).__name__}: {error}", action="Database")
            raise
        log.info("connected to PostgreSQL.", action="Database")
        try:
            yield
        finally:
            await engine.close_connection_pool()
            log.info("disconnected from PostgreSQL.", action="Database")

    session = CookieBackendConfig(
        secret=hashlib.sha256(settings.secret_key.encode()).digest(),
        key="imagehost_session",
        max_age=365 * 24 * 3600,
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
        # Direct links, static files and probes never carry or set a cookie.
        exclude=[r"^/images/.+", r"^/static/", r"^/health", r"^/ready"],
    )

    return Litestar(
        route_handlers=[
            home,
            health,
            ready,
            choose_language,
            UploadController,
            CatalogueController,
            DeleteController,
            create_static_files_router(path="/static", directories=[STATIC_DIR], send_as_attachment=False),
        ],
        dependencies={"images": Provide(lambda: service, sync_to_thread=False)},
        template_config=TemplateConfig(engine=template_engine(translator, settings)),
        middleware=[session.middleware],
        before_request=before_request,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=settings.max_request_bytes,
        lifespan=[database],
        state=State({"settings": settings, "translator": translator, "image_service": service}),
        openapi_config=None,
    )


def app_from_environment() -> Litestar:
    """The uvicorn factory: `uvicorn --factory imagehost.app:app_from_environment`."""
    return create_app(Settings.from_env())
