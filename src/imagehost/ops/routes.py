"""Every operator route, gathered for create_app()."""

from imagehost.ops import stats
from imagehost.ops.consistency.controllers import ROUTES as CONSISTENCY_ROUTES

ROUTE_HANDLERS = [*CONSISTENCY_ROUTES, *stats.ROUTES]
