"""Every operator route, gathered for create_app()."""

from imagehost.ops import stats
from imagehost.ops.consistency.controllers import ROUTES as CONSISTENCY_ROUTES
from imagehost.ops.logs.controllers import ROUTES as LOG_ROUTES

ROUTE_HANDLERS = [*CONSISTENCY_ROUTES, *stats.ROUTES, *LOG_ROUTES]
