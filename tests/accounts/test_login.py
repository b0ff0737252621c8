"""Sign-in through a real OpenID Connect provider, checked the way a person would: the pages they
see, the answers their browser and their scripts get, and the lines app.log keeps."""

from __future__ import annotations

import base64
import json
import re
import time

import httpx
import pytest

from imagehost.settings import Settings
from tests.accounts.conftest import CLIENT_ID, SITE, authorize_at_provider, set_roles, start_login
from tests.conftest import HTML, another_browser, png_bytes, run_sql, upload
from tests.live import free_port

JSON = {"Accept": "application/json"}
SIGNED_IN = "Signed in as {}"
SIGN_IN_LINK = 'href="/login?next='


def jwt_claims(token: str) -> dict:
    """The payload of a JWT, unverified: only to see what the app handed to the provider."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def signed_in_as(client, name: str) -> bool:
    page = client.get("/", headers=HTML)
    assert page.status_code == 200
    return SIGNED_IN.format(name) in page.text


def is_anonymous(client) -> bool:
    page = client.get("/", headers=HTML)
    assert page.status_code == 200
    return "Signed in as" not in page.text and SIGN_IN_LINK in page.text


def uploader_of(database_url: str, image_id: int) -> tuple[str | None, str | None]:
    row = run_sql(database_url, "SELECT uploader_sub, uploader_name FROM images WHERE id = $1", image_id)[0]
    return row["uploader_sub"], row["uploader_name"]


# 1. The whole login


def test_login_goes_through_the_provider_and_signs_the_person_in(oidc_client, sign_in, app_log):
    assert is_anonymous(oidc_client)
    back = sign_in(oidc_client, "sub-alice", ["appuser"], "alice")
    assert back.status_code == 303
    assert back.headers["location"] == "/"
    assert signed_in_as(oidc_client, "alice")
    assert '<form action="/logout" method="post">' in oidc_client.get("/", headers=HTML).text
    assert any(line.endswith("] Login: alice signed in (role: user).") for line in app_log())

    cookie = next(value for value in back.headers.get_list("set-cookie") if value.startswith("imagehost_session"))
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "samesite=lax"
    assert attributes["path"] == "Path=/"
    assert "secure" not in attributes  # plain http here; SECURE_COOKIES (or an https PUBLIC_BASE_URL) adds it


def test_no_secret_of_the_login_reaches_app_log(oidc_client, provider, app_log):
    set_roles(provider, "sub-alice", ["appuser"], "alice")
    back = authorize_at_provider(provider, start_login(oidc_client, provider), "sub-alice")
    assert oidc_client.get(f"/auth/callback?{back.query.decode()}", follow_redirects=False).status_code == 303
    log = "\n".join(app_log())
    assert "Login: alice signed in" in log
    assert back.params["code"] not in log
    assert back.params["state"] not in log


def test_login_returns_to_the_page_that_sent_the_visitor_to_sign_in(oidc_client, sign_in):
    refused = oidc_client.get("/images/?page=2", headers=HTML, follow_redirects=False)
    assert refused.status_code == 303
    login = httpx.URL(refused.headers["location"])
    assert login.path == "/login"
    back = sign_in(oidc_client, "sub-vera", ["appviewer"], "vera", next_path=login.params["next"])
    landed = oidc_client.get(back.headers["location"], headers=HTML)
    assert landed.status_code == 200
    assert (landed.url.path, landed.url.query) == ("/images/", b"page=2")


@pytest.mark.parametrize(
    "next_path",
    ["https://evil.example/", "//evil.example/", "/\\evil.example/", "/\t/evil.example/", "javascript:alert(1)"],
)
def test_login_never_sends_the_browser_to_another_site(oidc_client, sign_in, next_path):
    back = sign_in(oidc_client, "sub-alice", ["appuser"], "alice", next_path=next_path)
    assert back.status_code == 303
    location = back.headers["location"]
    # A path on this site: "//host" and "/\\host" would be another site to a browser, and a
    # browser drops tabs and newlines from a URL before reading it.
    assert location.startswith("/") and location[1:2] not in ("/", "\\")
    assert not any(char in location for char in "\\\t\r\n")


# 2. Roles


def test_anonymous_visitors_are_sent_to_sign_in_and_scripts_get_401(oidc_client, app_log):
    page = oidc_client.get("/images/", headers=HTML, follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login?next=%2Fimages")  # web/errors.py drops the last "/"

    fragment = oidc_client.get(
        "/images/?page=2",
        headers={"HX-Request": "true", "HX-Current-URL": f"{SITE}/images/?page=2"},
        follow_redirects=False,
    )
    assert fragment.status_code == 200
    assert fragment.headers["hx-redirect"] == "/login?next=%2Fimages%2F%3Fpage%3D2"  # from HX-Current-URL

    for response in (
        oidc_client.get("/images/", headers=JSON),
        oidc_client.get("/images-list"),
        upload(oidc_client, png_bytes()),
    ):
        assert response.status_code == 401
        assert response.json() == {"status": "error", "error": "Please sign in to do this."}

    upload_page = oidc_client.post(
        "/upload", files={"file": ("a.png", png_bytes())}, headers=HTML, follow_redirects=False
    )
    assert upload_page.status_code == 303
    assert upload_page.headers["location"] == "/login?next=%2Fupload"
    lines = app_log()
    assert any(line.endswith("] Refused: anonymous browse refused: sign-in required.") for line in lines)
    assert any(line.endswith("] Refused: anonymous upload refused: sign-in required.") for line in lines)
    assert run_sql(oidc_client.app.state.settings.database_url, "SELECT count(*) FROM images")[0][0] == 0


def test_a_viewer_browses_but_may_not_upload(oidc_client, sign_in, app_log):
    sign_in(oidc_client, "sub-vera", ["appviewer"], "vera")
    assert oidc_client.get("/images/", headers=HTML).status_code == 200
    assert oidc_client.get("/images-list").json()["status"] == "success"

    refused = upload(oidc_client, png_bytes())
    assert refused.status_code == 403
    assert refused.json()["error"] == "You are signed in as vera, but your role (viewer) does not allow this."
    assert upload(oidc_client, png_bytes(), headers=HTML).status_code == 403
    assert oidc_client.get("/upload", headers=HTML).status_code == 403
    assert any("upload by vera refused: role viewer." in line for line in app_log())


def test_a_user_uploads_and_deletes_their_own_images_only(oidc_client, sign_in, settings, app_log):
    sign_in(oidc_client, "sub-bob", ["appuser"], "bob")
    mine = upload(oidc_client, png_bytes(), "bob.png")
    assert mine.status_code == 201
    mine_id = mine.json()["id"]
    assert uploader_of(settings.database_url, mine_id) == ("oidc:sub-bob", "bob")
    assert any(f"image {mine.json()['filename']} uploaded by bob (bob.png" in line for line in app_log())
    listed = oidc_client.get("/images-list").json()["data"]
    assert [row["id"] for row in listed] == [mine_id]

    with another_browser(oidc_client) as carol_browser:
        sign_in(carol_browser, "sub-carol", ["appuser"], "carol")
        theirs_id = upload(carol_browser, png_bytes(color=(0, 0, 200)), "carol.png").json()["id"]

    # Another browser of bob's holds no delete key: only being the uploader lets him delete.
    with another_browser(oidc_client) as bob_elsewhere:
        sign_in(bob_elsewhere, "sub-bob", ["appuser"], "bob")
        own = bob_elsewhere.get("/images-list?uploader=me").json()["data"]
        assert [row["id"] for row in own] == [mine_id]
        refused = bob_elsewhere.delete(f"/delete/{theirs_id}")
        assert refused.status_code == 403
        assert bob_elsewhere.get("/images-list?uploader=oidc:sub-carol").status_code == 403
        assert bob_elsewhere.delete(f"/delete/{mine_id}").status_code == 200
    remaining = run_sql(settings.database_url, "SELECT id FROM images ORDER BY id")
    assert [row["id"] for row in remaining] == [theirs_id]


def test_an_admin_deletes_any_image_and_sees_and_filters_uploaders(oidc_client, sign_in, settings):
    ids = {}
    for sub, name in (("sub-bob", "bob"), ("sub-carol", "carol")):
        with another_browser(oidc_client) as browser:
            sign_in(browser, sub, ["appuser"], name)
            ids[name] = upload(browser, png_bytes(), f"{name}.png").json()["id"]

    user_page = None
    with another_browser(oidc_client) as browser:
        sign_in(browser, "sub-bob", ["appuser"], "bob")
        user_page = browser.get("/images/", headers=HTML).text
    assert '<th scope="col">Uploader</th>' not in user_page

    sign_in(oidc_client, "sub-ada", ["appadmin"], "ada")
    catalogue = oidc_client.get("/images/", headers=HTML).text
    assert '<th scope="col">Uploader</th>' in catalogue
    assert '<a href="/images/?uploader=oidc%3Asub-carol">carol</a>' in catalogue
    filtered = oidc_client.get("/images/?uploader=oidc:sub-carol", headers=HTML)
    assert filtered.status_code == 200
    assert "Images of carol" in filtered.text
    assert "carol.png" in filtered.text and "bob.png" not in filtered.text
    carols = oidc_client.get("/images-list?uploader=oidc:sub-carol").json()["data"]
    assert [row["id"] for row in carols] == [ids["carol"]]

    assert oidc_client.delete(f"/delete/{ids['bob']}").status_code == 200
    assert oidc_client.post(f"/delete/{ids['carol']}", headers=HTML, follow_redirects=False).status_code == 303
    assert run_sql(settings.database_url, "SELECT count(*) FROM images")[0][0] == 0


def test_the_delete_line_names_the_admin_who_deleted(oidc_client, sign_in, app_log):
    with another_browser(oidc_client) as browser:
        sign_in(browser, "sub-bob", ["appuser"], "bob")
        image_id = upload(browser, png_bytes(), "bob.png").json()["id"]
    sign_in(oidc_client, "sub-ada", ["appadmin"], "ada")
    assert oidc_client.delete(f"/delete/{image_id}").status_code == 200
    deleted = [line for line in app_log() if " deleted by " in line]
    assert "ada" in deleted[-1], deleted


def test_after_sign_out_the_browser_cannot_delete_the_persons_images(oidc_client, sign_in):
    sign_in(oidc_client, "sub-bob", ["appuser"], "bob")
    image_id = upload(oidc_client, png_bytes(), "bob.png").json()["id"]
    oidc_client.post("/logout", follow_redirects=False)
    assert is_anonymous(oidc_client)
    assert oidc_client.delete(f"/delete/{image_id}").status_code == 403


def test_someone_without_a_role_is_told_why(make_oidc_client, sign_in, app_log):
    client = make_oidc_client()
    sign_in(client, "sub-nina", ["offline_access", "uma_authorization"], "nina")
    assert any(line.endswith("] Login: nina signed in (role: none of ours).") for line in app_log())
    for response in (upload(client, png_bytes()), client.get("/images/", headers=JSON)):
        assert response.status_code == 403
        assert "You are signed in as nina, but you have none of the roles this site uses" in response.json()["error"]
    page = upload(client, png_bytes(), headers=HTML)
    assert page.status_code == 403 and "none of the roles this site uses" in page.text
    assert any("upload by nina refused: signed in without any role." in line for line in app_log())

    browsing_open = make_oidc_client(anonymous_browse=True)
    sign_in(browsing_open, "sub-nina", [], "nina")
    assert browsing_open.get("/images/", headers=HTML).status_code == 200
    assert upload(browsing_open, png_bytes()).status_code == 403


# 3. ANONYMOUS_BROWSE and ANONYMOUS_UPLOAD


def test_anonymous_browse_opens_the_catalogue_only(make_oidc_client):
    client = make_oidc_client(anonymous_browse=True)
    assert client.get("/images/", headers=HTML).status_code == 200
    assert client.get("/images-list").status_code == 200
    assert upload(client, png_bytes()).status_code == 401


def test_anonymous_upload_opens_uploading_only(make_oidc_client, settings):
    client = make_oidc_client(anonymous_upload=True)
    uploaded = upload(client, png_bytes())
    assert uploaded.status_code == 201
    assert uploader_of(settings.database_url, uploaded.json()["id"]) == (None, None)
    assert client.get("/upload", headers=HTML).status_code == 200
    assert client.get("/images/", headers=HTML, follow_redirects=False).status_code == 303
    # The anonymous uploader still deletes with the delete key, as before accounts existed.
    with another_browser(client) as stranger:
        assert stranger.delete(uploaded.json()["delete_url"].removeprefix(SITE)).status_code == 200


def test_the_settings_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "OIDC_ISSUER": "https://keycloak.example/realms/team/",
            "OIDC_CLIENT_ID": "imagehost",
            "OIDC_ROLES_CLAIM": "resource_access.imagehost.roles",
            "ROLE_ADMIN": "imagehost-admins",
            "ANONYMOUS_BROWSE": "true",
            "SESSION_IDLE_MINUTES": "30",
            "SESSION_ABSOLUTE_HOURS": "8",
        }
    )
    assert settings.oidc_enabled and settings.oidc_issuer == "https://keycloak.example/realms/team"
    assert settings.oidc_roles_claim == "resource_access.imagehost.roles"
    roles = (settings.role_viewer, settings.role_user, settings.role_admin)
    assert roles == ("appviewer", "appuser", "imagehost-admins")
    assert settings.anonymous_may_browse and not settings.anonymous_may_upload
    assert (settings.session_idle_seconds, settings.session_absolute_seconds) == (1800, 8 * 3600)
    assert not Settings.from_env({}).oidc_enabled
    assert Settings.from_env({}).anonymous_may_browse and Settings.from_env({}).anonymous_may_upload


# 4. Where the roles come from


@pytest.mark.parametrize(
    ("changes", "claims", "role"),
    [
        (
            {"oidc_roles_claim": "groups", "role_admin": "imagehost-admins"},
            {"groups": ["/staff", "/imagehost-admins"]},
            "admin",
        ),
        (
            {"oidc_roles_claim": "resource_access.imagehost.roles", "role_user": "uploader"},
            {"resource_access": {"imagehost": {"roles": ["uploader"]}}, "realm_access": {"roles": ["appadmin"]}},
            "user",
        ),
    ],
    ids=["keycloak-groups", "client-roles"],
)
def test_the_role_claim_and_the_role_names_are_settings(make_oidc_client, sign_in, app_log, changes, claims, role):
    client = make_oidc_client(**changes)
    sign_in(client, "sub-carol", claims={"preferred_username": "carol", **claims})
    assert any(line.endswith(f"] Login: carol signed in (role: {role}).") for line in app_log())
    assert upload(client, png_bytes()).status_code == 201
    catalogue = client.get("/images/", headers=HTML).text
    assert ('<th scope="col">Uploader</th>' in catalogue) is (role == "admin")


# 5. Logins that must fail, and fail cleanly


def test_a_tampered_state_is_refused_and_logged(oidc_client, provider, app_log):
    set_roles(provider, "sub-alice", ["appuser"], "alice")
    back = authorize_at_provider(provider, start_login(oidc_client, provider), "sub-alice")
    state = back.params["state"]
    tampered = back.copy_set_param("state", ("y" if state[0] == "x" else "x") + state[1:])  # always another state
    answer = oidc_client.get(f"/auth/callback?{tampered.query.decode()}", headers=HTML, follow_redirects=False)
    assert answer.status_code == 400
    assert "Sign-in failed: the sign-in request is unknown, was tampered with or was already used." in answer.text
    assert is_anonymous(oidc_client)
    assert any(
        line.endswith("] Login: sign-in failed: the sign-in request is unknown, was tampered with or was already used.")
        for line in app_log()
    )


def test_a_callback_without_a_pending_login_fails_cleanly(oidc_client, provider):
    set_roles(provider, "sub-alice", ["appuser"], "alice")
    back = authorize_at_provider(provider, start_login(oidc_client, provider), "sub-alice")
    with another_browser(oidc_client) as stranger:  # a browser that never went to /login
        answer = stranger.get(f"/auth/callback?{back.query.decode()}", headers=HTML, follow_redirects=False)
        assert answer.status_code == 400 and "Sign-in failed" in answer.text
        assert stranger.get("/auth/callback", headers=JSON).status_code == 400
        assert is_anonymous(stranger)


def test_a_replayed_callback_fails_cleanly(oidc_client, provider, app_log):
    set_roles(provider, "sub-alice", ["appuser"], "alice")
    back = authorize_at_provider(provider, start_login(oidc_client, provider), "sub-alice")
    callback = f"/auth/callback?{back.query.decode()}"
    assert oidc_client.get(callback, follow_redirects=False).status_code == 303
    again = oidc_client.get(callback, headers=HTML, follow_redirects=False)
    assert again.status_code == 400 and "Sign-in failed" in again.text

    # The used code with a fresh login's state, in another browser: the provider refuses the code.
    with another_browser(oidc_client) as other:
        fresh = start_login(other, provider)
        stolen = back.copy_set_param("state", fresh.params["state"])
        answer = other.get(f"/auth/callback?{stolen.query.decode()}", headers=HTML, follow_redirects=False)
        assert answer.status_code == 400
        assert "Sign-in failed: the code exchange failed" in answer.text
        assert is_anonymous(other)
    assert sum("] Login: alice signed in" in line for line in app_log()) == 1


def test_a_code_issued_for_another_login_is_refused(oidc_client, provider):
    """The ID token carries the nonce of the login it was issued for (the mock provider does not check
    PKCE, so the nonce is what ties a code to the browser that started the login here)."""
    set_roles(provider, "sub-mallory", ["appadmin"], "mallory")
    with another_browser(oidc_client) as attacker:
        attackers_code = authorize_at_provider(provider, start_login(attacker, provider), "sub-mallory")
    victims_login = start_login(oidc_client, provider)
    injected = attackers_code.copy_set_param("state", victims_login.params["state"])
    answer = oidc_client.get(f"/auth/callback?{injected.query.decode()}", headers=HTML, follow_redirects=False)
    assert answer.status_code == 400
    assert "Sign-in failed: the ID token is not valid" in answer.text
    assert is_anonymous(oidc_client)


def test_a_refusal_at_the_provider_fails_cleanly(oidc_client, provider):
    url = start_login(oidc_client, provider)
    denied = provider.http.post(url, data={"action": "deny"})
    assert denied.status_code == 302
    back = httpx.URL(denied.headers["location"])
    answer = oidc_client.get(f"/auth/callback?{back.query.decode()}", headers=HTML, follow_redirects=False)
    assert answer.status_code == 400
    assert "Sign-in failed: the provider answered access_denied." in answer.text
    assert is_anonymous(oidc_client)


def test_an_unreachable_provider_fails_cleanly(make_oidc_client, app_log):
    client = make_oidc_client(oidc_issuer=f"http://127.0.0.1:{free_port()}")
    answer = client.get("/login", headers=HTML, follow_redirects=False)
    assert answer.status_code == 400
    assert "Sign-in failed: provider discovery failed (ConnectError)." in answer.text
    assert any("Login: sign-in failed: provider discovery failed" in line for line in app_log())


def test_sign_in_attempts_are_rate_limited_per_client(make_oidc_client, provider, app_log):
    client = make_oidc_client(login_rate_limit=2)
    for _ in range(2):
        start_login(client, provider)
    refused = client.get("/login", headers=HTML, follow_redirects=False)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert any("Refused: GET /login from" in line and "rate limit" in line for line in app_log())


# 6. Session lifetimes


def test_an_idle_session_ends(make_oidc_client, sign_in, app_log):
    client = make_oidc_client(session_idle_seconds=1)
    sign_in(client, "sub-alice", ["appuser"], "alice")
    assert signed_in_as(client, "alice")
    time.sleep(1.2)
    assert is_anonymous(client)
    assert client.get("/images/", headers=HTML, follow_redirects=False).status_code == 303
    lines = app_log()
    assert any(line.endswith("] Logout: session of alice was idle too long; signed out.") for line in lines)


def test_activity_keeps_a_session_alive_past_its_idle_lifetime(make_oidc_client, sign_in):
    client = make_oidc_client(session_idle_seconds=2)
    sign_in(client, "sub-alice", ["appuser"], "alice")
    time.sleep(1.2)
    assert signed_in_as(client, "alice")
    time.sleep(1.2)
    assert signed_in_as(client, "alice")  # 2.4 s after sign-in, 1.2 s after the last request


def test_a_session_ends_at_its_absolute_lifetime(make_oidc_client, sign_in, app_log):
    client = make_oidc_client(session_absolute_seconds=1)
    sign_in(client, "sub-alice", ["appuser"], "alice")
    assert signed_in_as(client, "alice")
    time.sleep(1.2)
    assert is_anonymous(client)
    ended = "] Logout: session of alice reached its absolute lifetime; signed out."
    assert any(line.endswith(ended) for line in app_log())


# 7. Logout


def test_logout_ends_the_session_here_and_at_the_provider(oidc_client, provider, sign_in, app_log):
    sign_in(oidc_client, "sub-alice", ["appuser"], "alice")
    answer = oidc_client.post("/logout", follow_redirects=False)
    assert answer.status_code == 303
    end_session = httpx.URL(answer.headers["location"])
    assert str(end_session.copy_with(query=None)) == provider.metadata["end_session_endpoint"]
    assert end_session.params["post_logout_redirect_uri"] == f"{SITE}/"
    assert end_session.params["client_id"] == CLIENT_ID
    hint = jwt_claims(end_session.params["id_token_hint"])
    assert (hint["sub"], hint["iss"]) == ("sub-alice", provider.url)
    assert CLIENT_ID in ([hint["aud"]] if isinstance(hint["aud"], str) else hint["aud"])

    assert is_anonymous(oidc_client)
    assert oidc_client.get("/images/", headers=HTML, follow_redirects=False).status_code == 303
    assert upload(oidc_client, png_bytes()).status_code == 401
    assert any(line.endswith("] Logout: alice signed out.") for line in app_log())

    # The provider asks to confirm, then sends the browser back to the site.
    confirm_page = provider.http.get(end_session)
    assert confirm_page.status_code == 200
    form = re.search(r'<form method="post" action="([^"]+)">', confirm_page.text)
    redirect_uri = re.search(r'name="redirect_uri" value="([^"]+)"', confirm_page.text)
    assert form and redirect_uri
    confirmed = provider.http.post(provider.url + form.group(1), data={"redirect_uri": redirect_uri.group(1)})
    assert confirmed.status_code == 302
    assert confirmed.headers["location"] == f"{SITE}/"


def test_logout_without_a_session_just_goes_home(oidc_client, app_log):
    answer = oidc_client.post("/logout", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    assert not any("Logout:" in line for line in app_log())


def test_another_site_cannot_sign_the_person_out(oidc_client, sign_in):
    sign_in(oidc_client, "sub-alice", ["appuser"], "alice")
    refused = oidc_client.post("/logout", headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert refused.status_code == 403
    # A link or an <img> on another site is a GET, which SameSite=Lax lets through with the cookie.
    linked = oidc_client.get("/logout", headers={**HTML, "Sec-Fetch-Site": "cross-site"}, follow_redirects=False)
    assert linked.status_code == 405
    assert signed_in_as(oidc_client, "alice")


# 8. Without OIDC


def test_without_oidc_the_site_works_as_before(client, settings):
    answer = client.get("/login", headers=HTML)
    assert answer.status_code == 404
    assert "Sign-in is not configured on this server." in answer.text
    assert client.get("/login").json()["error"] == "Sign-in is not configured on this server."
    assert client.get("/auth/callback?code=x&state=y").status_code == 404
    logout = client.post("/logout", follow_redirects=False)
    assert logout.status_code == 303 and logout.headers["location"] == "/"

    home = client.get("/", headers=HTML).text
    assert SIGN_IN_LINK not in home and "Signed in as" not in home
    uploaded = upload(client, png_bytes())
    assert uploaded.status_code == 201
    assert uploader_of(settings.database_url, uploaded.json()["id"]) == (None, None)
    assert client.get("/images/", headers=HTML).status_code == 200
    assert [row["id"] for row in client.get("/images-list").json()["data"]] == [uploaded.json()["id"]]
    with another_browser(client) as stranger:
        assert stranger.delete(f"/delete/{uploaded.json()['id']}").status_code == 403
    assert client.delete(f"/delete/{uploaded.json()['id']}").status_code == 200
