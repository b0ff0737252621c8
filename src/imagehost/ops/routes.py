"""Every operator route, gathered for create_app()."""

from imagehost.ops import backup, consistency, stats

ROUTE_HANDLERS = [*backup.ROUTES, *consistency.ROUTES, *stats.ROUTES]
