"""Who is asking: a signed-in person with a role, or an anonymous visitor."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from imagehost.settings import Settings


class Role(IntEnum):
    """Each role includes the ones below it."""

    NONE = 0
    VIEWER = 1
    USER = 2
    ADMIN = 3


@dataclass(frozen=True)
class Principal:
    sub: str | None = None
    name: str = ""
    role: Role = Role.NONE
    via: str = "anonymous"  # anonymous, session, token

    @property
    def signed_in(self) -> bool:
        return self.sub is not None

    @property
    def is_admin(self) -> bool:
        return self.role >= Role.ADMIN


ANONYMOUS = Principal()


def claim_at(claims: dict[str, Any], path: str) -> Any:
    """`realm_access.roles` -> claims["realm_access"]["roles"]; None where the path leads nowhere."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def role_from(names: Iterable[str], settings: Settings) -> Role:
    """The highest of our three roles among the provider's role names (other names are ignored)."""
    granted = set(names)
    for role, name in ((Role.ADMIN, settings.role_admin), (Role.USER, settings.role_user)):
        if name in granted:
            return role
    return Role.VIEWER if settings.role_viewer in granted else Role.NONE


def role_from_claims(claims: dict[str, Any], settings: Settings) -> Role:
    found = claim_at(claims, settings.oidc_roles_claim)
    if isinstance(found, str):
        found = found.replace(",", " ").split()
    if not isinstance(found, list | tuple):
        return Role.NONE
    # Groups come as paths ("/appadmin") in Keycloak's group mapper: compare the last part too.
    names = {str(item) for item in found} | {str(item).rsplit("/", 1)[-1] for item in found}
    return role_from(names, settings)
