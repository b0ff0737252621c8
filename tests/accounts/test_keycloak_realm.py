"""The Keycloak realm export that compose imports agrees with the app's defaults."""

from __future__ import annotations

import json

from imagehost.accounts.principal import claim_at, role_from_claims
from imagehost.settings import Settings
from tests.conftest import PROJECT_ROOT

REALM = PROJECT_ROOT / "src" / "imagehost" / "accounts" / "keycloak" / "imagehost-realm.json"


def test_the_realm_has_our_roles_client_and_role_mapper():
    realm = json.loads(REALM.read_text())
    settings = Settings()
    roles = {role["name"] for role in realm["roles"]["realm"]}
    assert {settings.role_viewer, settings.role_user, settings.role_admin} <= roles
    client = next(c for c in realm["clients"] if c["clientId"] == "imagehost")
    assert client["standardFlowEnabled"] and not client["implicitFlowEnabled"] and not client["publicClient"]
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    assert "http://localhost/auth/callback" in client["redirectUris"]
    mapper = next(m for m in client["protocolMappers"] if m["protocolMapper"] == "oidc-usermodel-realm-role-mapper")
    # The claim the mapper writes is the one the app reads by default, into the ID token and userinfo.
    assert mapper["config"]["claim.name"] == settings.oidc_roles_claim
    assert mapper["config"]["id.token.claim"] == mapper["config"]["userinfo.token.claim"] == "true"


def test_each_demo_user_gets_the_role_its_name_says():
    realm = json.loads(REALM.read_text())
    settings = Settings()
    for user in realm["users"]:
        claims = {"realm_access": {"roles": user["realmRoles"]}}
        assert claim_at(claims, settings.oidc_roles_claim) == user["realmRoles"]
        role = role_from_claims(claims, settings)
        assert role.name.lower() == {"viewer": "viewer", "user": "user", "admin": "admin"}[user["username"]]
