"""Personal API tokens: made on the profile page, shown once, stored hashed, used as Bearer."""

from __future__ import annotations

import hashlib
import html
import json
import re
from urllib.parse import unquote

from tests.conftest import HTML, png_bytes, run_sql

JSON = {"Accept": "application/json"}


def test_a_token_is_shown_once_stored_hashed_and_acts_with_its_owners_role(oidc_client, sign_in, settings, app_log):
    assert sign_in(oidc_client, "ulla", roles=["appuser"], name="ulla").status_code == 303
    page = oidc_client.post("/profile/tokens", data={"name": "laptop script"}, headers=HTML)
    assert page.status_code == 201
    token = re.search(r'id="token-value"[^>]*value="(ih_[^"]+)"', page.text).group(1)
    curl = f'curl -H "Authorization: Bearer {token}" -F file=@picture.png http://testserver.local/upload'
    assert curl in html.unescape(page.text)
    sharex = json.loads(unquote(re.search(r'href="data:application/json;charset=utf-8,([^"]+)"', page.text).group(1)))
    assert sharex["RequestURL"] == "http://testserver.local/upload"
    assert sharex["Headers"]["Authorization"] == f"Bearer {token}" and sharex["FileFormName"] == "file"
    # Only a hash is stored, and the profile lists the token without showing it again.
    rows = run_sql(settings.database_url, "SELECT token_hash, name, owner_role FROM api_tokens")
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest() and rows[0]["owner_role"] == 2
    listing = oidc_client.get("/profile", headers=HTML).text
    assert "laptop script" in listing and token not in listing and token[:9] in listing
    assert not any(token in line for line in app_log())
    # A script with the token: no cookies, the owner's role (upload allowed, the uploader recorded).
    oidc_client.cookies.clear()
    bearer = {"Authorization": f"Bearer {token}", **JSON}
    uploaded = oidc_client.post("/upload", files={"file": ("x.png", png_bytes())}, headers=bearer)
    assert uploaded.status_code == 201
    row = run_sql(settings.database_url, "SELECT uploader_name FROM images WHERE id = $1", uploaded.json()["id"])[0]
    assert row["uploader_name"] == "ulla"
    assert oidc_client.get("/images-list", headers=bearer).status_code == 200
    assert oidc_client.get("/images-list", headers=JSON).status_code == 401  # the same without it


def test_a_revoked_token_stops_working_at_once(oidc_client, sign_in, app_log):
    sign_in(oidc_client, "ulla", roles=["appuser"])
    body = oidc_client.post("/profile/tokens", data={"name": "old"}, headers=JSON).json()
    assert body["token"].startswith("ih_")
    revoked = oidc_client.delete(f"/profile/tokens/{body['id']}", headers=JSON)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    refused = oidc_client.get("/images-list", headers={"Authorization": f"Bearer {body['token']}", **JSON})
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]
    assert any('Token: ulla revoked API token "old"' in line for line in app_log())


def test_people_see_and_revoke_only_their_own_tokens_and_admins_everyones(oidc_client, sign_in):
    sign_in(oidc_client, "ulla", roles=["appuser"])
    mine = oidc_client.post("/profile/tokens", data={"name": "ulla's"}, headers=JSON).json()
    oidc_client.cookies.clear()
    sign_in(oidc_client, "bob", roles=["appuser"])
    assert oidc_client.get("/profile", headers=JSON).json()["tokens"] == []
    assert oidc_client.delete(f"/profile/tokens/{mine['id']}", headers=JSON).status_code == 404
    oidc_client.cookies.clear()
    sign_in(oidc_client, "ada", roles=["appadmin"])
    listed = oidc_client.get("/profile", headers=JSON).json()["tokens"]
    assert [token["owner"] for token in listed] == ["ulla"]
    assert oidc_client.delete(f"/profile/tokens/{mine['id']}", headers=JSON).status_code == 200


def test_a_token_follows_its_owners_role_at_the_next_sign_in(oidc_client, sign_in):
    sign_in(oidc_client, "ulla", roles=["appuser"])
    token = oidc_client.post("/profile/tokens", data={"name": "t"}, headers=JSON).json()["token"]
    oidc_client.cookies.clear()
    sign_in(oidc_client, "ulla", roles=["appviewer"])  # demoted at the provider
    oidc_client.cookies.clear()
    bearer = {"Authorization": f"Bearer {token}", **JSON}
    assert oidc_client.post("/upload", files={"file": ("x.png", png_bytes())}, headers=bearer).status_code == 403


def test_a_token_needs_a_name(oidc_client, sign_in):
    sign_in(oidc_client, "ulla", roles=["appuser"])
    response = oidc_client.post("/profile/tokens", data={"name": "  "}, headers=JSON)
    assert response.status_code == 422 and "name" in response.json()["error"]
