"""GET /metrics in Prometheus' text format, and Litestar's HTTP metrics middleware.

Who may read it: the holder of METRICS_TOKEN (`Authorization: Bearer ...`), and admins (a signed-in
admin, the ADMIN_TOKEN operator). With METRICS_TOKEN empty, admins only. nginx hides the route
from outside unless METRICS_PUBLIC is true; a scraper on the compose network asks app:8000.
"""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from imagehost.accounts.identity import bearer_token, principal_of_request, token_is_valid
from imagehost.accounts.principal import Principal
from imagehost.api.openapi import binary
from imagehost.images.service import ImageService
from imagehost.metrics import instruments
from imagehost.metrics.readings import take_readings

# The METRICS_TOKEN holder: no identity and no role, so it may do nothing but read this route.
SCRAPER = Principal(name="metrics scraper")


def http_metrics() -> PrometheusConfig:
    """imagehost_requests_total, imagehost_request_duration_seconds, imagehost_requests_in_progress
    and imagehost_requests_error_total (5xx), labelled method, path, status_code and app_name.

    `path` is the route template (/images/{stored_name:str}), never the path asked for. A path no
    route matches never reaches the middleware at all (Litestar runs it per route), so a 404 for a
    made-up path adds no series either; exclude_unhandled_paths says the same for later versions.
    """
    return PrometheusConfig(app_name="imagehost", prefix="imagehost", group_path=True, exclude_unhandled_paths=True)


async def metrics_token(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Runs before the identity is resolved (guards come first): METRICS_TOKEN is no account token,
    so it is recognised here and the request goes on as the SCRAPER; any other token is resolved
    as anywhere else (a wrong one is refused with 401)."""
    expected = connection.app.state.settings.metrics_token
    offered = bearer_token(connection)
    if expected and offered and token_is_valid(offered, (expected,)):
        connection.scope["user"] = SCRAPER


@get(
    "/metrics",
    guards=[metrics_token],
    responses=binary(200, CONTENT_TYPE_LATEST, "The metrics, in Prometheus' text format", 401, 403),
)
async def metrics(request: Request, images: ImageService) -> Response:
    if principal_of_request(request) is not SCRAPER:
        images.policy.require_admin(principal_of_request(request))
    await take_readings(images, request.app.state.database)
    return Response(
        generate_latest(instruments.scrape_registry()),
        media_type=CONTENT_TYPE_LATEST,
        headers={"Cache-Control": "no-store"},
    )


ROUTES: list = [metrics]
