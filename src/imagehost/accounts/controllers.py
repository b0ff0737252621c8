"""/login, /auth/callback and /logout: the OpenID Connect dance, in our words when it fails; the
profile page: personal tokens, and for admins the people who signed in."""

from __future__ import annotations

import json
import time

from litestar import Controller, Request, Response, delete, get, post
from litestar.params import Parameter
from litestar.response import Redirect

from imagehost.accounts import people
from imagehost.accounts.identity import principal_of_request
from imagehost.accounts.oidc import OIDCClient, OIDCError, PendingLogin
from imagehost.accounts.personal_tokens import DEFAULT_LIFETIME, LIFETIMES
from imagehost.accounts.principal import Kind, Principal, Role, role_from_claims
from imagehost.accounts.session import SESSION_PENDING, SESSION_USER, forget_user, remember_user
from imagehost.api.openapi import (
    CreatedTokenAnswer,
    EndAccessAnswer,
    RevokedTokenAnswer,
    TokenListAnswer,
    answers,
    form,
    text,
)
from imagehost.errors import SignInFailed, SignInRequired, SignInUnavailable
from imagehost.logging import action_log
from imagehost.web.responses import representation, respond

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


@get("/login", include_in_schema=False)  # browser routes of the sign-in flow: redirects, no JSON
async def login(request: Request, next: str | None = None) -> Response:
    client = oidc_client(request)
    try:
        url, pending = await client.start(f"{site_url(request)}/auth/callback", local_path(next))
    except OIDCError as error:
        raise SignInFailed(reason=str(error)) from None
    request.set_session({**(request.session or {}), SESSION_PENDING: pending.to_session()})
    return Redirect(url, status_code=303)


@get("/auth/callback", include_in_schema=False)
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
    await request.app.state.personal_tokens.follow_role(principal)
    await people.record_sign_in(principal)
    roles = role.name.lower() if role is not Role.NONE else "none of ours"
    action_log().info(f"{principal.name} signed in (role: {roles}).", action="Login")
    return Redirect(pending.next, status_code=303)


# POST only: the CSRF guard checks unsafe methods, and a GET could be triggered by any other site.
@post("/logout", status_code=303, include_in_schema=False)
async def logout(request: Request) -> Response:
    session = request.session or {}
    user = session.get(SESSION_USER) or {}
    id_token = session.get("id_token")
    principal = principal_of_request(request)
    if principal.kind is Kind.PERSON:
        # Every copy of this cookie (and this person's other sessions) ends with this one.
        await people.end_sessions(principal)
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


def sharex_config(site: str, token: str) -> dict[str, object]:
    """A ShareX custom uploader (.sxcu) for this site and this token."""
    return {
        "Version": "15.0.0",
        "Name": "ImageHost",
        "DestinationType": "ImageUploader",
        "RequestMethod": "POST",
        "RequestURL": f"{site}/upload",
        "Headers": {"Authorization": f"Bearer {token}", "Accept": "application/json"},
        "Body": "MultipartFormData",
        "FileFormName": "file",
        "URL": "{json:url}",
        "DeletionURL": "{json:delete_url}",
        "ErrorMessage": "{json:error}",
    }


class ProfileController(Controller):
    """The profile page: your personal API tokens (an admin sees everyone's)."""

    path = "/profile"

    async def _context(self, request: Request, principal: Principal) -> dict[str, object]:
        tokens = request.app.state.personal_tokens
        everyone = principal.is_admin
        listed = await tokens.list(principal, owner="*" if everyone else None)
        return {
            "tokens": listed,
            "show_owners": everyone,
            "created": None,
            "site": site_url(request),
            "people": await people.everyone(tokens.policy, principal) if everyone else [],
            "lifetimes": LIFETIMES,
            "default_lifetime": DEFAULT_LIFETIME,
        }

    def _signed_in(self, request: Request) -> Principal:
        principal = principal_of_request(request)
        if principal.kind is not Kind.PERSON:
            raise SignInRequired(action="open the profile")
        return principal

    @get(responses=answers(200, TokenListAnswer, "Your tokens (an admin's: everyone's)", 401, 503))
    async def profile(self, request: Request) -> Response:
        return await self._render(request, self._signed_in(request))

    async def _render(self, request: Request, principal: Principal) -> Response:
        context = await self._context(request, principal)
        return respond(
            request,
            page="accounts/profile.html",
            fragment="accounts/_tokens.html",
            context=context,
            json=lambda: {"status": "success", "tokens": [token_json(t) for t in context["tokens"]]},
        )

    @post(
        "/tokens",
        status_code=201,
        operation_class=form(
            name=text("A name for the token"),
            expires_in_days=text("Its lifetime (default 90)", "30", "90", "365", "never"),
        ),
        responses=answers(201, CreatedTokenAnswer, "Created; `token` is shown this once", 401, 403, 422, 503),
    )
    async def create_token(self, request: Request) -> Response:
        principal = self._signed_in(request)
        form = await request.form()
        token, info = await request.app.state.personal_tokens.create(
            principal, str(form.get("name") or ""), str(form.get("expires_in_days") or "")
        )
        context = await self._context(request, principal)
        site = site_url(request)
        context["created"] = {
            "token": token,
            "info": info,
            "curl": f'curl -H "Authorization: Bearer {token}" -F file=@picture.png {site}/upload',
            "sharex": json.dumps(sharex_config(site, token), indent=2),
        }
        return respond(
            request,
            page="accounts/profile.html",
            fragment="accounts/_tokens.html",
            context=context,
            status_code=201,
            json=lambda: {"status": "success", "token": token, **token_json(info)},
        )

    @post("/tokens/{token_id:int}/revoke", responses=answers(200, TokenListAnswer, "Revoked", 401, 404, 503))
    async def revoke_from_form(self, request: Request, token_id: int) -> Response:
        principal = self._signed_in(request)
        await request.app.state.personal_tokens.revoke(principal, token_id)
        if representation(request) == "page":
            return Redirect("/profile", status_code=303)
        return await self._render(request, principal)

    @delete(
        "/tokens/{token_id:int}", status_code=200, responses=answers(200, RevokedTokenAnswer, "Revoked", 401, 404, 503)
    )
    async def revoke(self, request: Request, token_id: int) -> Response:
        principal = self._signed_in(request)
        info = await request.app.state.personal_tokens.revoke(principal, token_id)
        if representation(request) == "json":
            return Response({"status": "success", **token_json(info)})
        return await self._render(request, principal)

    @post(
        "/people/{person_id:int}/end-access",
        status_code=200,
        responses=answers(200, EndAccessAnswer, "Every session ended, every token revoked", 401, 403, 404, 503),
    )
    async def end_access(self, request: Request, person_id: int) -> Response:
        """An admin ends every session and revokes every token of one person (an off-boarding)."""
        principal = self._signed_in(request)
        policy = request.app.state.personal_tokens.policy
        person, revoked = await people.end_access(policy, principal, person_id)
        if representation(request) == "json":
            return Response({"status": "success", "person": person.sub, "name": person.name, "revoked_tokens": revoked})
        if representation(request) == "page":
            return Redirect("/profile", status_code=303)
        return await self._render(request, principal)


def token_json(info: object) -> dict[str, object]:
    return {
        "id": info.id,
        "name": info.name,
        "prefix": info.prefix,
        "owner": info.owner_name,
        "created_at": info.created_at.isoformat(),
        "last_used_at": info.last_used_at.isoformat() if info.last_used_at else None,
        "revoked": info.revoked_at is not None,
        "expires_at": info.expires_at.isoformat() if info.expires_at else None,
        "expired": info.expired,
    }
