"""Service tokens from API_TOKENS, checked in constant time."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection

from imagehost.errors import Unauthorized


def bearer_token(request: Request | ASGIConnection) -> str:
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def token_is_valid(offered: str, tokens: tuple[str, ...]) -> bool:
    # Compare against every token, whatever matches first, so timing reveals nothing.
    valid = False
    for token in tokens:
        valid |= hmac.compare_digest(offered.encode(), token.encode())
    return valid and bool(offered)


async def require_api_token(connection: ASGIConnection, _handler: Any = None) -> None:
    """Litestar guard for the API routes: 401 unless the request carries a valid token, one of
    API_TOKENS or a personal token (which then acts with its owner's role)."""
    from imagehost.accounts.session import resolve_principal

    principal = await resolve_principal(connection)
    if principal.via != "token":
        raise Unauthorized(method=connection.scope.get("method", ""), path=connection.url.path)
