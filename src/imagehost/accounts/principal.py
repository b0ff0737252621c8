"""Who is asking: a signed-in person, a token (personal, service, operator) or an anonymous visitor.

A principal has an identity (`sub`, what uploads and tokens are recorded under) and a kind (how
it came here), kept apart: rules about kinds ("/logs is for service tokens") never compare
identities, and identities of different kinds can never be equal (`oidc:...` for people,
`token:...` for tokens).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, StrEnum, auto
from typing import Any

from imagehost.settings import Settings


class Role(IntEnum):
    """Each role includes the ones below it."""

    NONE = 0
    VIEWER = 1
    USER = 2
    ADMIN = 3


class Kind(StrEnum):
    """How the caller proved who they are."""

    ANONYMOUS = auto()
    PERSON = auto()  # signed in through OpenID Connect: the session cookie
    PERSONAL_TOKEN = auto()  # a person's own API token, acting with their role
    SERVICE_TOKEN = auto()  # one of API_TOKENS
    OPERATOR = auto()  # ADMIN_TOKEN


# People's identities are the provider's subject under this prefix; tokens' start with `token:`.
OIDC_PREFIX = "oidc:"
TOKEN_PREFIX = "token:"  # noqa: S105 (a name space, not a secret)


# Uploads made with a service token before each token had its own identity: which token made them
# was not recorded, so any service token may act for them (policy.may_delete).
LEGACY_SERVICE_SUB = f"{TOKEN_PREFIX}service"


def person_identity(subject: str) -> str:
    """The identity of a person the provider calls `subject` (stable across issuer URL changes)."""
    return OIDC_PREFIX + subject


@dataclass(frozen=True)
class Principal:
    sub: str | None = None
    name: str = ""
    role: Role = Role.NONE
    kind: Kind = Kind.ANONYMOUS

    @property
    def signed_in(self) -> bool:
        return self.sub is not None

    @property
    def via(self) -> str:
        """For templates: "session", "token" or "anonymous"."""
        if self.kind is Kind.PERSON:
            return "session"
        return "anonymous" if self.kind is Kind.ANONYMOUS else "token"

    @property
    def is_admin(self) -> bool:
        return self.role >= Role.ADMIN

    def as_arguments(self) -> dict[str, Any]:
        """For a queued task that acts for this principal later, on any instance (JSON)."""
        return {"sub": self.sub, "name": self.name, "role": int(self.role), "kind": self.kind.value}

    @classmethod
    def from_arguments(cls, arguments: dict[str, Any]) -> Principal:
        return cls(arguments["sub"], arguments["name"], Role(arguments["role"]), Kind(arguments["kind"]))


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
