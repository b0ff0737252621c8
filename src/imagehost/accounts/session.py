"""The signed-in person lives in the signed, encrypted session cookie, with an idle and an absolute
lifetime, and only while PostgreSQL says their sessions from then still count (people.py): logout
and an admin's "end sessions" make every copy of the cookie anonymous."""

from __future__ import annotations

import time
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection

from imagehost.accounts.people import sessions_valid_after
from imagehost.accounts.principal import ANONYMOUS, Kind, Principal, Role, person_identity
from imagehost.logging import action_log
from imagehost.settings import Settings

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
