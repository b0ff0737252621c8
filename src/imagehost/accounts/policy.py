"""The rules of who may do what, in one place. Services call these; templates and controllers
only ask them (so a fragment or a JSON route cannot show or do what its page may not)."""

from __future__ import annotations

from imagehost.accounts.principal import LEGACY_SERVICE_SUB, Kind, Principal, Role
from imagehost.errors import ActionForbidden, NoRoleAssigned, SignInRequired
from imagehost.settings import Settings


class Policy:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def may_browse(self, principal: Principal) -> bool:
        return principal.role >= Role.VIEWER or self.settings.anonymous_may_browse

    def may_upload(self, principal: Principal) -> bool:
        return principal.role >= Role.USER or self.settings.anonymous_may_upload

    def require_browse(self, principal: Principal) -> None:
        if not self.may_browse(principal):
            self._refuse(principal, "browse")

    def require_upload(self, principal: Principal) -> None:
        if not self.may_upload(principal):
            self._refuse(principal, "upload")

    def require_admin(self, principal: Principal) -> None:
        if not principal.is_admin:
            self._refuse(principal, "administer")

    def may_delete(self, principal: Principal, uploader: str | None, *, has_key: bool, operator: bool) -> bool:
        """Admins and the operator token delete anything; a user deletes their own uploads;
        anyone holding the upload's delete key (anonymous uploads) deletes that one. Uploads made
        with a service token before each had its own identity may be deleted by any service token."""
        if operator or has_key or principal.is_admin:
            return True
        if principal.role < Role.USER or uploader is None:
            return False
        if principal.kind is Kind.SERVICE_TOKEN and uploader == LEGACY_SERVICE_SUB:
            return True
        return uploader == principal.sub

    def may_add_to_album(self, principal: Principal) -> bool:
        """Users add to any existing album (a shop's team shares its catalogue); anonymous uploaders
        (ANONYMOUS_UPLOAD) only ever create new ones."""
        return principal.role >= Role.USER

    def may_manage_album(self, principal: Principal, creator: str | None) -> bool:
        """Replace an album's images or delete the album or its articles: admins and its creator."""
        if principal.is_admin:
            return True
        return principal.role >= Role.USER and creator is not None and creator == principal.sub

    def sees_uploaders(self, principal: Principal) -> bool:
        return principal.is_admin

    def _refuse(self, principal: Principal, action: str) -> None:
        if not principal.signed_in:
            raise SignInRequired(action=action)
        if principal.role is Role.NONE:
            raise NoRoleAssigned(name=principal.name or principal.sub, action=action)
        raise ActionForbidden(
            name=principal.name or principal.sub or "?", action=action, role=principal.role.name.lower()
        )
