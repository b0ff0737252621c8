"""People who signed in, kept in PostgreSQL: when they last signed in (TOKEN_OWNER_MAX_AGE_DAYS
counts from it) and from when their sessions count. Logout and an admin's "end sessions and
tokens" move that time, so every copy of an older session cookie is anonymous, in every app
process and on every machine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from imagehost.accounts.policy import Policy
from imagehost.accounts.principal import Principal, Role
from imagehost.accounts.tables import ApiToken, Person
from imagehost.errors import PersonNotFound
from imagehost.logging import action_log


@dataclass(frozen=True)
class PersonInfo:
    id: int
    sub: str
    name: str
    role: Role
    last_sign_in_at: datetime | None
    sessions_valid_after: datetime | None


async def record_sign_in(principal: Principal) -> None:
    await Person.raw(
        "INSERT INTO people (sub, name, role, last_sign_in_at) VALUES ({}, {}, {}, {})"
        " ON CONFLICT (sub) DO UPDATE SET name = EXCLUDED.name, role = EXCLUDED.role,"
        " last_sign_in_at = EXCLUDED.last_sign_in_at",
        principal.sub,
        principal.name,
        int(principal.role),
        datetime.now(UTC),
    )


async def sessions_valid_after(sub: str) -> datetime | None:
    row = await Person.select(Person.sessions_valid_after).where(Person.sub == sub).first()
    return row["sessions_valid_after"] if row else None


async def last_sign_in(sub: str) -> datetime | None:
    row = await Person.select(Person.last_sign_in_at).where(Person.sub == sub).first()
    return row["last_sign_in_at"] if row else None


async def end_sessions(principal: Principal) -> None:
    """Every session of this person begun until now is over (also for someone who signed in before
    people were recorded). The app's clock, not the database's: the sign-in times it is compared
    with come from the app too."""
    await Person.raw(
        "INSERT INTO people (sub, name, role, sessions_valid_after) VALUES ({}, {}, {}, {})"
        " ON CONFLICT (sub) DO UPDATE SET sessions_valid_after = EXCLUDED.sessions_valid_after",
        principal.sub,
        principal.name,
        int(principal.role),
        datetime.now(UTC),
    )


async def everyone(policy: Policy, principal: Principal) -> list[PersonInfo]:
    policy.require_admin(principal)
    rows = await Person.select().order_by(Person.last_sign_in_at, ascending=False)
    return [_info(row) for row in rows]


async def end_access(policy: Policy, principal: Principal, person_id: int) -> tuple[PersonInfo, int]:
    """An admin ends all sessions and revokes all tokens of one person; returns how many tokens."""
    policy.require_admin(principal)
    row = await Person.select().where(Person.id == person_id).first()
    if row is None:
        raise PersonNotFound(id=person_id)
    person = _info(row)
    now = datetime.now(UTC)
    await Person.update({Person.sessions_valid_after: now}).where(Person.id == person_id)
    revoked = await (
        ApiToken.update({ApiToken.revoked_at: now})
        .where(ApiToken.owner_sub == person.sub, ApiToken.revoked_at.is_null())
        .returning(ApiToken.id)
    )
    action_log().info(
        f"{principal.name} ended every session of {person.name} and revoked {len(revoked)} of their API tokens.",
        action="Logout",
    )
    return _info({**row, "sessions_valid_after": now}), len(revoked)


def _info(row: dict) -> PersonInfo:
    return PersonInfo(
        id=row["id"],
        sub=row["sub"],
        name=row["name"],
        role=Role(row["role"]),
        last_sign_in_at=row["last_sign_in_at"],
        sessions_valid_after=row["sessions_valid_after"],
    )
