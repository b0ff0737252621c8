"""The signed-in person lives in the signed, encrypted session cookie, with an idle and an absolute
lifetime, and only while PostgreSQL says their sessions from then still count (people.py): logout
and an admin's "end sessions" make every copy of the cookie anonymous."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from imagehost.accounts.people import sessions_valid_after
from imagehost.accounts.principal import ANONYMOUS, Kind, Principal, Role, person_identity
from imagehost.logging import action_log
from imagehost.settings import Settings

SESSION_COOKIE = "imagehost_session"
# Behind https: only this host can set it (Secure, Path=/, no Domain), no sibling subdomain.
SECURE_SESSION_COOKIE = f"__Host-{SESSION_COOKIE}"
SESSION_USER = "user"
SESSION_PENDING = "oidc_pending"
# Refresh "last seen" at most this often, so that most answers leave the cookie as it is (and more
# often for short idle lifetimes: a resolution as long as the lifetime would end active sessions).
SEEN_RESOLUTION_SECONDS = 60


def remember_user(request: Request, claims: dict[str, Any], role: Role, id_token: str) -> Principal:
    now = time.time()
    name = str(claims.get("preferred_username") or claims.get("name") or claims.get("email") or claims["sub"])
    user = {"sub": str(claims["sub"]), "name": name[:255], "role": int(role), "login_at": now, "seen_at": now}
    session = {key: value for key, value in (request.session or {}).items() if key != SESSION_PENDING}
    # The ID token is kept for the provider's logout (id_token_hint), nothing else.
    request.set_session({**session, SESSION_USER: user, "id_token": id_token})
    return Principal(sub=person_identity(user["sub"]), name=user["name"], role=role, kind=Kind.PERSON)


def forget_user(request: Request | ASGIConnection) -> None:
    """End the signed-in session; the person's uploads leave this browser's recent list too."""
    session = dict(request.session or {})
    for key in (SESSION_USER, "id_token", SESSION_PENDING):
        session.pop(key, None)
    if "uploads" in session:
        session["uploads"] = [entry for entry in session["uploads"] if len(entry) < 4 or not entry[3]]
    request.set_session(session)


async def session_principal(connection: ASGIConnection, settings: Settings) -> Principal:
    """The signed-in person of the session cookie, or anonymous. Expired sessions are ended here,
    and the end is logged."""
    if not settings.oidc_enabled or "session" not in connection.scope:
        return ANONYMOUS
    user = (connection.session or {}).get(SESSION_USER)
    if not isinstance(user, dict):
        return ANONYMOUS
    now = time.time()
    expired = ""
    if now - float(user.get("login_at", 0)) > settings.session_absolute_seconds:
        expired = "reached its absolute lifetime"
    elif now - float(user.get("seen_at", 0)) > settings.session_idle_seconds:
        expired = "was idle too long"
    identity = person_identity(str(user["sub"]))
    if not expired:
        valid_after = await sessions_valid_after(identity)
        if valid_after is not None and float(user.get("login_at", 0)) <= valid_after.timestamp():
            expired = "was ended (signed out, or by an administrator); a copy of its cookie was used"
    if expired:
        action_log().info(f"session of {user.get('name')} {expired}; signed out.", action="Logout")
        forget_user(connection)
        return ANONYMOUS
    if now - float(user.get("seen_at", 0)) > min(SEEN_RESOLUTION_SECONDS, settings.session_idle_seconds / 10):
        connection.set_session({**connection.session, SESSION_USER: {**user, "seen_at": now}})
    return Principal(
        sub=identity,
        name=str(user.get("name", "")),
        role=Role(int(user.get("role", 0))),
        kind=Kind.PERSON,
    )


def session_cookie_name(settings: Settings) -> str:
    return SECURE_SESSION_COOKIE if settings.secure_cookies else SESSION_COOKIE


def move_old_session_cookie(settings: Settings) -> list[Callable[[ASGIApp], ASGIApp]]:
    """Behind https, a browser's cookie from before the `__Host-` prefix is read once under the new
    name (its chunks too: `imagehost_session-0`, ...), and cleared once the new one is set, so
    nobody loses the delete keys of their uploads kept in it. Goes before the session middleware."""
    return [_OldSessionCookieMover] if settings.secure_cookies else []


_OLD_COOKIE = re.compile(rf"{SESSION_COOKIE}(?:-\d+)?")
_NEW_COOKIE = re.compile(rf"{re.escape(SECURE_SESSION_COOKIE)}(?:-\d+)?")


class _OldSessionCookieMover:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        pairs = []
        for name, value in scope["headers"]:
            if name == b"cookie":
                pairs += [part.strip().partition("=") for part in value.decode("latin-1").split(";") if part.strip()]
        old = [name for name, _, _ in pairs if _OLD_COOKIE.fullmatch(name)]
        if not old:
            await self.app(scope, receive, send)
            return
        if not any(_NEW_COOKIE.fullmatch(name) for name, _, _ in pairs):
            renamed = "; ".join(
                f"{'__Host-' + name if _OLD_COOKIE.fullmatch(name) else name}={value}" for name, _, value in pairs
            )
            headers = [(n, v) for n, v in scope["headers"] if n != b"cookie"] + [(b"cookie", renamed.encode("latin-1"))]
            scope = {**scope, "headers": headers}  # type: ignore[assignment]

        async def clear_old_once_new_is_set(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                new_set = any(
                    n.lower() == b"set-cookie" and v.startswith(f"{SECURE_SESSION_COOKIE}=".encode())
                    for n, v in headers
                )
                if new_set:
                    headers += [
                        (
                            b"set-cookie",
                            f"{name}=null; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; Secure; "
                            "HttpOnly; SameSite=Lax".encode(),
                        )
                        for name in old
                    ]
                    message = {**message, "headers": headers}  # type: ignore[misc]
            await send(message)

        await self.app(scope, receive, clear_old_once_new_is_set)
