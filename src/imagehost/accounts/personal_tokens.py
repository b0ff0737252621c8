"""Personal API tokens: created, named, listed and revoked by their owner (or an admin).

A token is `ih_` + 256 random bits, shown once; only its SHA-256 is stored, so a database leak
gives no usable token. It acts with its owner's role as of the owner's last sign-in, until it
expires (30, 90 or 365 days, or never, chosen at creation), and is suspended while its owner has
not signed in for TOKEN_OWNER_MAX_AGE_DAYS days (when set).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from imagehost.accounts.people import last_sign_in
from imagehost.accounts.policy import Policy
from imagehost.accounts.principal import Kind, Principal, Role
from imagehost.accounts.tables import ApiToken
from imagehost.errors import ActionForbidden, InvalidParameter, TokenExpired, TokenNotFound, TokenSuspended
from imagehost.logging import action_log

PREFIX = "ih_"
MAX_TOKENS_PER_OWNER = 50
# The choices of the profile page's form (`expires_in_days`); None: never expires.
LIFETIMES: dict[str, int | None] = {"30": 30, "90": 90, "365": 365, "never": None}
DEFAULT_LIFETIME = "90"
# The profile page flags a token this close to its end.
EXPIRES_SOON = timedelta(days=7)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    prefix: str
    owner_sub: str
    owner_name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    expires_at: datetime | None = None
    expiry_chosen: bool = True

    @property
    def made_before_expiry(self) -> bool:
        """Made before tokens had an expiry: it has none, though nobody chose "never"."""
        return self.expires_at is None and not self.expiry_chosen

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= datetime.now(UTC)

    @property
    def expires_soon(self) -> bool:
        return self.expires_at is not None and not self.expired and self.expires_at - datetime.now(UTC) < EXPIRES_SOON


def lifetime_days(choice: str | None) -> int | None:
    """Days from the form's `expires_in_days` (empty: the default, 90); None for "never"."""
    choice = (choice or DEFAULT_LIFETIME).strip().lower()
    if choice not in LIFETIMES:
        raise InvalidParameter(field="expires_in_days", reason="must be 30, 90, 365 or never")
    return LIFETIMES[choice]


def _info(row: dict) -> TokenInfo:
    return TokenInfo(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        owner_sub=row["owner_sub"],
        owner_name=row["owner_name"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
        expires_at=row["expires_at"],
        expiry_chosen=row["expiry_chosen"],
    )


_COLUMNS = (
    ApiToken.id,
    ApiToken.name,
    ApiToken.prefix,
    ApiToken.owner_sub,
    ApiToken.owner_name,
    ApiToken.created_at,
    ApiToken.last_used_at,
    ApiToken.revoked_at,
    ApiToken.expires_at,
    ApiToken.expiry_chosen,
)


class PersonalTokens:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.log = action_log()

    async def create(
        self, principal: Principal, name: str, expires_in_days: str | None = None
    ) -> tuple[str, TokenInfo]:
        if principal.kind is not Kind.PERSON or principal.role < Role.VIEWER:
            raise ActionForbidden(
                name=principal.name or "anonymous", action="create a token", role=principal.role.name.lower()
            )
        name = " ".join(name.split())[:100]
        if not name:
            raise InvalidParameter(field="name", reason="give the token a name")
        days = lifetime_days(expires_in_days)
        active = await ApiToken.count().where((ApiToken.owner_sub == principal.sub) & ApiToken.revoked_at.is_null())
        if active >= MAX_TOKENS_PER_OWNER:
            raise InvalidParameter(
                field="name", reason=f"at most {MAX_TOKENS_PER_OWNER} active tokens; revoke one first"
            )
        token = PREFIX + secrets.token_urlsafe(32)
        row = ApiToken(
            owner_sub=principal.sub,
            owner_name=principal.name,
            owner_role=int(principal.role),
            name=name,
            token_hash=token_hash(token),
            prefix=token[: len(PREFIX) + 6],
            expires_at=datetime.now(UTC) + timedelta(days=days) if days else None,
            expiry_chosen=True,
        )
        await row.save()
        lasting = f"for {days} days" if days else "without expiry"
        self.log.info(f'{principal.name} created API token "{name}" ({row.prefix}…) {lasting}.', action="Token")
        created = await ApiToken.select(*_COLUMNS).where(ApiToken.id == row.id).first()
        return token, _info(created)

    async def list(self, principal: Principal, owner: str | None = None) -> list[TokenInfo]:
        """Your own tokens; an admin may list anyone's (`owner`), or everyone's (`owner="*"`)."""
        query = ApiToken.select(*_COLUMNS).order_by(ApiToken.created_at, ascending=False)
        if owner is not None and owner != principal.sub:
            self.policy.require_admin(principal)
            if owner != "*":
                query = query.where(ApiToken.owner_sub == owner)
        else:
            query = query.where(ApiToken.owner_sub == principal.sub)
        return [_info(row) for row in await query]

    async def revoke(self, principal: Principal, token_id: int) -> TokenInfo:
        row = await ApiToken.select(*_COLUMNS).where(ApiToken.id == token_id).first()
        if row is None or (row["owner_sub"] != principal.sub and not principal.is_admin):
            raise TokenNotFound(id=token_id)
        if row["revoked_at"] is None:
            await ApiToken.update({ApiToken.revoked_at: datetime.now(UTC)}).where(ApiToken.id == token_id)
            self.log.info(
                f'{principal.name} revoked API token "{row["name"]}" ({row["prefix"]}…) of {row["owner_name"]}.',
                action="Token",
            )
        return _info({**row, "revoked_at": row["revoked_at"] or datetime.now(UTC)})

    async def authenticate(self, token: str) -> Principal | None:
        """The token's owner, acting through it; None for an unknown or revoked token. An expired
        or suspended one is refused with its own reason, so that its owner knows what to do."""
        if not token.startswith(PREFIX):
            return None
        row = (
            await ApiToken.select(*_COLUMNS, ApiToken.owner_role)
            .where(ApiToken.token_hash == token_hash(token))
            .first()
        )
        if row is None or row["revoked_at"] is not None:
            return None
        info = _info(row)
        if info.expired:
            raise TokenExpired(prefix=info.prefix, owner=info.owner_name, date=f"{info.expires_at:%Y-%m-%d %H:%M} UTC")
        max_age = self.policy.settings.token_owner_max_age_days
        if max_age:
            signed_in = await last_sign_in(info.owner_sub)
            if signed_in is None or datetime.now(UTC) - signed_in > timedelta(days=max_age):
                raise TokenSuspended(prefix=info.prefix, owner=info.owner_name, days=max_age)
        await ApiToken.update({ApiToken.last_used_at: datetime.now(UTC)}).where(ApiToken.id == row["id"])
        return Principal(
            sub=row["owner_sub"], name=row["owner_name"], role=Role(row["owner_role"]), kind=Kind.PERSONAL_TOKEN
        )

    async def follow_role(self, principal: Principal) -> None:
        """At each sign-in, the owner's tokens take the role the provider gives now (up or down)."""
        await ApiToken.update({ApiToken.owner_role: int(principal.role), ApiToken.owner_name: principal.name}).where(
            ApiToken.owner_sub == principal.sub
        )
