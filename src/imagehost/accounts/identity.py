"""Who is asking, worked out once per request: a Bearer token (one of API_TOKENS, the operator's
ADMIN_TOKEN, or a personal token), else the signed-in session, else an anonymous visitor.

The answer is kept as the request's `user` (Litestar's `request.user`), so guards, handlers and
templates share it; `principal_of_request` reads it.
"""

from __future__ import annotations

import hashlib
import hmac

from litestar.connection import ASGIConnection

from imagehost.accounts.principal import ANONYMOUS, TOKEN_PREFIX, Kind, Principal, Role
from imagehost.accounts.session import session_principal
from imagehost.errors import TokenRefused

# ADMIN_TOKEN: the operator of an installation, with or without accounts.
OPERATOR = Principal(sub=f"{TOKEN_PREFIX}operator", name="operator", role=Role.ADMIN, kind=Kind.OPERATOR)


def bearer_token(connection: ASGIConnection) -> str:
    authorization = connection.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def token_is_valid(offered: str, tokens: tuple[str, ...]) -> bool:
    # Compare against every token, whatever matches first, so timing reveals nothing.
    valid = False
    for token in tokens:
        valid |= hmac.compare_digest(offered.encode(), token.encode())
    return valid and bool(offered)


def service_identity(token: str) -> str:
    """`token:` + the first 12 hex digits of the token's SHA-256: its own, and no secret."""
    return TOKEN_PREFIX + hashlib.sha256(token.encode()).hexdigest()[:12]


def service_principal(token: str) -> Principal:
    sub = service_identity(token)
    return Principal(
        sub=sub, name=f"service token {sub.removeprefix(TOKEN_PREFIX)}", role=Role.USER, kind=Kind.SERVICE_TOKEN
    )


async def resolve_principal(connection: ASGIConnection) -> Principal:
    """Who is asking, worked out once per request (guards run before the before-request hook)."""
    cached = connection.scope.get("user")
    if not isinstance(cached, Principal):
        cached = await _principal_of(connection)
        connection.scope["user"] = cached
    return cached


def principal_of_request(connection: ASGIConnection) -> Principal:
    """The caller, as resolved for this request (anonymous where nothing was resolved)."""
    found = connection.scope.get("user")
    return found if isinstance(found, Principal) else ANONYMOUS


async def _principal_of(connection: ASGIConnection) -> Principal:
    """A Bearer token (a service token, the operator's, or a personal one that is valid), else
    the session. A token that is offered and refused is an error, never an anonymous visit."""
    settings = connection.app.state.settings
    token = bearer_token(connection)
    if token:
        if token_is_valid(token, settings.api_tokens):
            return service_principal(token)
        if settings.admin_token and token_is_valid(token, (settings.admin_token,)):
            return OPERATOR
        personal = await connection.app.state.personal_tokens.authenticate(token)
        if personal is None:
            raise TokenRefused(method=connection.scope.get("method", ""), path=connection.url.path)
        return personal
    return await session_principal(connection, settings)
