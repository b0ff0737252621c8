"""Credentials end when they should: tokens expire as chosen and are suspended while their owner
stays away, logout ends every copy of the session cookie, an admin ends someone's access."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from imagehost.settings import Settings
from tests.conftest import HTML, run_sql

JSON = {"Accept": "application/json"}


def bearer(token: str) -> dict[str, str]:
    return {**JSON, "Authorization": f"Bearer {token}"}


def create_token(client, **fields: str) -> dict:
    answer = client.post("/profile/tokens", data={"name": "script", **fields}, headers=JSON)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_a_token_lasts_as_long_as_chosen(oidc_client, sign_in):
    sign_in(oidc_client, "sub-bob", ["appuser"], "bob")
    now = datetime.now(UTC)
    for choice, days in (("30", 30), ("90", 90), ("365", 365), (None, 90)):
        body = create_token(oidc_client, **({"expires_in_days": choice} if choice else {}))
        expires = datetime.fromisoformat(body["expires_at"])
        assert abs(expires - (now + timedelta(days=days))) < timedelta(minutes=5), (choice, body)
    assert create_token(oidc_client, expires_in_days="never")["expires_at"] is None
    refused = oidc_client.post("/profile/tokens", data={"name": "x", "expires_in_days": "7"}, headers=JSON)
    assert refused.status_code == 422 and "expires_in_days" in refused.json()["error"]
    listed = oidc_client.get("/profile", headers=JSON).json()["tokens"]
    assert sorted(t["expires_at"] is None for t in listed) == [False, False, False, False, True]
    page = oidc_client.get("/profile", headers=HTML).text
    assert f"{now + timedelta(days=365):%Y-%m-%d}" in page and ">never<" in page
    assert '<option value="90" selected>' in page


def test_an_expired_token_is_refused_with_its_reason(oidc_client, sign_in, settings, app_log):
    sign_in(oidc_client, "sub-bob", ["appuser"], "bob")
    token = create_token(oidc_client, expires_in_days="30")
    oidc_client.cookies.clear()
    assert oidc_client.get("/images-list", headers=bearer(token["token"])).status_code == 200
    run_sql(settings.database_url, "UPDATE api_tokens SET expires_at = now() - interval '1 minute'")
    refused = oidc_client.get("/images-list", headers=bearer(token["token"]))
    assert refused.status_code == 401
    assert "expired on" in refused.json()["error"] and "profile page" in refused.json()["error"]
    assert any(f"API token {token['prefix']}… of bob refused: it expired on" in line for line in app_log())


def test_old_tokens_are_marked_and_tokens_near_their_end_flagged(oidc_client, sign_in, settings):
    sign_in(oidc_client, "sub-bob", ["appuser"], "bob")
    old = create_token(oidc_client)
    ending = create_token(oidc_client)
    run_sql(
        settings.database_url, "UPDATE api_tokens SET expires_at = NULL, expiry_chosen = false WHERE id = $1", old["id"]
    )
    run_sql(
        settings.database_url,
        "UPDATE api_tokens SET expires_at = now() + interval '3 days' WHERE id = $1",
        ending["id"],
    )
    page = oidc_client.get("/profile", headers=HTML).text
    row = page[page.index(f'id="token-{old["id"]}"') :]
    assert "no expiry: made before tokens expired" in row[: row.index("</tr>")]
    row = page[page.index(f'id="token-{ending["id"]}"') :]
    assert "expires soon" in row[: row.index("</tr>")]
    russian = oidc_client.get("/profile", headers={**HTML, "Accept-Language": "ru"}).text
    assert "скоро истекает" in russian and "бессрочный" in russian


def test_tokens_are_suspended_while_their_owner_stays_away(make_oidc_client, sign_in, settings):
    client = make_oidc_client(token_owner_max_age_days=30)
    sign_in(client, "sub-bob", ["appuser"], "bob")
    token = create_token(client, expires_in_days="never")["token"]
    client.cookies.clear()
    assert client.get("/images-list", headers=bearer(token)).status_code == 200
    run_sql(settings.database_url, "UPDATE people SET last_sign_in_at = now() - interval '31 days'")
    refused = client.get("/images-list", headers=bearer(token))
    assert refused.status_code == 401 and "has not signed in for more than 30 days" in refused.json()["error"]
    sign_in(client, "sub-bob", ["appuser"], "bob")
    client.cookies.clear()
    assert client.get("/images-list", headers=bearer(token)).status_code == 200


def test_without_the_setting_an_absent_owner_keeps_their_tokens(oidc_client, sign_in, settings):
    sign_in(oidc_client, "sub-bob", ["appuser"], "bob")
    token = create_token(oidc_client)["token"]
    oidc_client.cookies.clear()
    run_sql(settings.database_url, "UPDATE people SET last_sign_in_at = now() - interval '3000 days'")
    assert oidc_client.get("/images-list", headers=bearer(token)).status_code == 200


def test_the_setting_is_read_from_the_environment():
    assert Settings.from_env({}).token_owner_max_age_days == 0
    assert Settings.from_env({"TOKEN_OWNER_MAX_AGE_DAYS": "45"}).token_owner_max_age_days == 45


def test_a_copy_of_the_session_cookie_is_anonymous_after_logout(oidc_client, sign_in, app_log):
    sign_in(oidc_client, "sub-bob", ["appuser"], "bob")
    copy = list(oidc_client.cookies.jar)
    assert oidc_client.get("/profile", headers=JSON).status_code == 200
    assert oidc_client.post("/logout", follow_redirects=False).status_code == 303
    oidc_client.cookies.clear()
    for cookie in copy:  # the copy an attacker took before the logout
        oidc_client.cookies.jar.set_cookie(cookie)
    assert oidc_client.get("/profile", headers=JSON).status_code == 401
    assert "Signed in as bob" not in oidc_client.get("/", headers=HTML).text
    assert any("session of bob was ended" in line for line in app_log())
    # Signing in again starts a session that counts.
    sign_in(oidc_client, "sub-bob", ["appuser"], "bob")
    assert oidc_client.get("/profile", headers=JSON).status_code == 200


def test_an_admin_ends_every_session_and_token_of_a_person(make_oidc_client, sign_in, settings, app_log):
    client = make_oidc_client()
    sign_in(client, "sub-bob", ["appuser"], "bob")
    bobs_browser = list(client.cookies.jar)
    token = create_token(client)["token"]
    client.cookies.clear()
    sign_in(client, "sub-ada", ["appadmin"], "ada")
    page = client.get("/profile", headers=HTML).text
    bob_id = run_sql(settings.database_url, "SELECT id FROM people WHERE sub = 'oidc:sub-bob'")[0][0]
    assert f'action="/profile/people/{bob_id}/end-access"' in page
    ended = client.post(f"/profile/people/{bob_id}/end-access", headers=HTML, follow_redirects=False)
    assert ended.status_code == 303 and ended.headers["location"] == "/profile"
    assert client.get("/profile", headers=JSON).status_code == 200  # the admin's own session goes on
    assert any("ada ended every session of bob and revoked 1 of their API tokens" in line for line in app_log())
    client.cookies.clear()
    for cookie in bobs_browser:
        client.cookies.jar.set_cookie(cookie)
    assert client.get("/profile", headers=JSON).status_code == 401
    client.cookies.clear()
    assert client.get("/images-list", headers=bearer(token)).status_code == 401
    assert client.post("/profile/people/999999/end-access", headers=JSON).status_code == 401  # anonymous
