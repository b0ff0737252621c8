"""Personal API tokens: created, named, listed and revoked by their owner (or an admin).

A token is `ih_` + 256 random bits, shown once; only its SHA-256 is stored, so a database leak
gives no usable token. It acts with its owner's role as of the owner's last sign-in.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from imagehost.accounts.policy import Policy
from imagehost.accounts.principal import Kind, Principal, Role
from imagehost.accounts.tables import ApiToken
from imagehost.errors import ActionForbidden, InvalidParameter, TokenNotFound
from imagehost.logging import action_log

PREFIX = "ih_"
MAX_TOKENS_PER_OWNER = 50


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
)


class PersonalTokens:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.log = action_log()

    async def create(self, principal: Principal, name: str) -> tuple[str, TokenInfo]:
        if principal.kind is not Kind.PERSON or principal.role < Role.VIEWER:
            raise ActionForbidden(
                name=principal.name or "anonymous", action="create a token", role=principal.role.name.lower()
            )
        name = " ".join(name.split())[:100]
        if not name:
            raise InvalidParameter(field="name", reason="give the token a name")
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
        )
        await row.save()
        self.log.info(f'{principal.name} created API token "{name}" ({row.prefix}…).', action="Token")
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
        if not token.startswith(PREFIX):
            return None
        row = await (
            ApiToken.select(
                ApiToken.id, ApiToken.owner_sub, ApiToken.owner_name, ApiToken.owner_role, ApiToken.revoked_at
            )
            .where(ApiToken.token_hash == token_hash(token))
            .first()
        )
        if row is None or row["revoked_at"] is not None:
            return None
        await ApiToken.update({ApiToken.last_used_at: datetime.now(UTC)}).where(ApiToken.id == row["id"])
        return Principal(
            sub=row["owner_sub"], name=row["owner_name"], role=Role(row["owner_role"]), kind=Kind.PERSONAL_TOKEN
        )

    async def follow_role(self, principal: Principal) -> None:
        """At each sign-in, the owner's tokens take the role the provider gives now (up or down)."""
        await ApiToken.update({ApiToken.owner_role: int(principal.role), ApiToken.owner_name: principal.name}).where(
            ApiToken.owner_sub == principal.sub
        )
