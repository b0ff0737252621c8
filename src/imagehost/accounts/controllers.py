"""/login, /auth/callback and /logout: the OpenID Connect dance, in our words when it fails."""

from __future__ import annotations

import time

from litestar import Request, Response, get, route
from litestar.params import Parameter
from litestar.response import Redirect

from imagehost.accounts.oidc import OIDCClient, OIDCError, PendingLogin
from imagehost.accounts.principal import Role, role_from_claims
from imagehost.accounts.session import SESSION_PENDING, SESSION_USER, forget_user, remember_user
from imagehost.errors import SignInFailed, SignInUnavailable
from imagehost.logging import action_log

LOGIN_TIMEOUT_SECONDS = 600


def site_url(request: Request) -> str:
    return request.app.state.settings.public_base_url or str(request.base_url).rstrip("/")


def local_path(candidate: str | None) -> str:
    return candidate if candidate and candidate.startswith("/") and not candidate.startswith("//") else "/"


def oidc_client(request: Request) -> OIDCClient:
    client = request.app.state.oidc
    if client is None:
        raise SignInUnavailable()
    return client


@get("/login")
async def login(request: Request, next: str | None = None) -> Response:
    client = oidc_client(request)
    try:
        url, pending = await client.start(f"{site_url(request)}/auth/callback", local_path(next))
    except OIDCError as error:
        raise SignInFailed(reason=str(error)) from None
    request.set_session({**(request.session or {}), SESSION_PENDING: pending.to_session()})
    return Redirect(url, status_code=303)


@get("/auth/callback")
async def callback(
    request: Request,
    code: str | None = None,
    error: str | None = None,
    # `state` is a name Litestar keeps for itself: read the query parameter under another name.
    oauth_state: str | None = Parameter(query="state", default=None),
) -> Response:
    client = oidc_client(request)
    pending = PendingLogin.from_session((request.session or {}).get(SESSION_PENDING))
    if error:
        raise SignInFailed(reason=f"the provider answered {error[:64]}")
    if pending is None or not oauth_state or oauth_state != pending.state:
        raise SignInFailed(reason="the sign-in request is unknown, was tampered with or was already used")
    if time.time() - pending.started > LOGIN_TIMEOUT_SECONDS:
        raise SignInFailed(reason="the sign-in took too long")
    if not code:
        raise SignInFailed(reason="the provider sent no code")
    try:
        signed_in = await client.finish(pending, code, f"{site_url(request)}/auth/callback")
    except OIDCError as failure:
        raise SignInFailed(reason=str(failure)) from None
    role = role_from_claims(signed_in.claims, request.app.state.settings)
    principal = remember_user(request, signed_in.claims, role, signed_in.id_token)
    roles = role.name.lower() if role is not Role.NONE else "none of ours"
    action_log().info(f"{principal.name} signed in (role: {roles}).", action="Login")
    return Redirect(pending.next, status_code=303)


@route("/logout", http_method=["GET", "POST"])
async def logout(request: Request) -> Response:
    session = request.session or {}
    user = session.get(SESSION_USER) or {}
    id_token = session.get("id_token")
    forget_user(request)
    if user:
        action_log().info(f"{user.get('name')} signed out.", action="Logout")
    client = request.app.state.oidc
    target = "/"
    if client is not None and user:
        try:
            target = await client.logout_url(id_token, f"{site_url(request)}/") or "/"
        except OIDCError:
            target = "/"  # the local session is over either way
    return Redirect(target, status_code=303)
