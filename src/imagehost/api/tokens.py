"""The guard of the token-only API routes. Who the caller is belongs to accounts (identity.py)."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection

from imagehost.accounts.identity import resolve_principal
from imagehost.errors import Unauthorized


async def require_api_token(connection: ASGIConnection, _handler: Any = None) -> None:
    """Litestar guard for the API routes: 401 unless the request carries a valid token, one of
    API_TOKENS, ADMIN_TOKEN or a personal token (which then acts with its owner's role)."""
    principal = await resolve_principal(connection)
    if principal.via != "token":
        raise Unauthorized(method=connection.scope.get("method", ""), path=connection.url.path)
