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


def test_the_realm_ships_no_users_and_no_client_secret():
    """Anyone could sign in to a fresh install with known passwords, or act as its client."""
    realm = json.loads(REALM.read_text())
    assert not realm.get("users")
    client = next(c for c in realm["clients"] if c["clientId"] == "imagehost")
    assert "secret" not in client  # Keycloak generates one at import (README: step by step)
    assert "change-me" not in REALM.read_text()


def test_each_role_maps_to_the_app_role_its_name_says():
    settings = Settings()
    names = {settings.role_viewer: "viewer", settings.role_user: "user", settings.role_admin: "admin"}
    for name, expected in names.items():
        claims = {"realm_access": {"roles": [name]}}
        assert claim_at(claims, settings.oidc_roles_claim) == [name]
        assert role_from_claims(claims, settings).name.lower() == expected


def test_keycloak_refuses_to_start_without_its_admin_password():
    import subprocess

    import yaml

    keycloak = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["services"]["keycloak"]
    assert keycloak["profiles"] == ["keycloak"]
    # Checked inside the container's own command: compose interpolates every service, so a
    # required-variable `${...:?}` would stop a plain `docker compose up` without the profile.
    assert ":?" not in str(keycloak)
    entrypoint = [part.replace("$$", "$") for part in keycloak["entrypoint"]]  # compose's escape
    assert entrypoint[:2] == ["/bin/sh", "-c"]
    fake_kc = 'echo kc.sh started with "$@"'
    script = entrypoint[2].replace("/opt/keycloak/bin/kc.sh", f"sh -c '{fake_kc}' kc.sh")
    refused = subprocess.run(
        ["sh", "-c", script, *entrypoint[3:], *keycloak["command"]],
        env={"PATH": "/usr/bin:/bin", "KC_BOOTSTRAP_ADMIN_PASSWORD": ""},
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0
    assert "set KEYCLOAK_ADMIN_PASSWORD in .env" in refused.stderr and "started" not in refused.stdout
    started = subprocess.run(
        ["sh", "-c", script, *entrypoint[3:], *keycloak["command"]],
        env={"PATH": "/usr/bin:/bin", "KC_BOOTSTRAP_ADMIN_PASSWORD": "s3cret"},
        capture_output=True,
        text=True,
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "kc.sh started with start-dev --import-realm"
    assert keycloak["environment"]["KC_BOOTSTRAP_ADMIN_PASSWORD"] == "${KEYCLOAK_ADMIN_PASSWORD:-}"
