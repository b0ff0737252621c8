"""Each caller has an identity of its own: every service token (API_TOKENS) its own, people theirs
under `oidc:`, so no token can act for a person or another token, and no person for a token."""

from __future__ import annotations

import hashlib

from tests.conftest import png_bytes, run_sql, upload

TOKEN_A = "service-token-a"
TOKEN_B = "service-token-b"
JSON = {"Accept": "application/json"}


def bearer(token: str) -> dict[str, str]:
    return {**JSON, "Authorization": f"Bearer {token}"}


def upload_with(client, token: str) -> dict:
    answer = upload(client, png_bytes(), "service.png", headers=bearer(token))
    assert answer.status_code == 201, answer.text
    client.cookies.clear()  # the browser-side delete key is not what is tested here
    return answer.json()


def uploader_of(database_url: str, image_id: int) -> str | None:
    return run_sql(database_url, "SELECT uploader_sub FROM images WHERE id = $1", image_id)[0][0]


def test_each_service_token_has_its_own_identity(make_client, settings):
    client = make_client(api_tokens=(TOKEN_A, TOKEN_B))
    image = upload_with(client, TOKEN_A)
    assert (
        uploader_of(settings.database_url, image["id"]) == "token:" + hashlib.sha256(TOKEN_A.encode()).hexdigest()[:12]
    )
    refused = client.delete(f"/delete/{image['id']}", headers=bearer(TOKEN_B))
    assert refused.status_code == 403, refused.text
    assert client.delete(f"/delete/{image['id']}", headers=bearer(TOKEN_A)).status_code == 200


def test_uploads_from_before_identities_are_deletable_by_any_service_token(make_client, settings):
    client = make_client(api_tokens=(TOKEN_A, TOKEN_B))
    image = upload_with(client, TOKEN_A)
    run_sql(settings.database_url, "UPDATE images SET uploader_sub = 'token:service' WHERE id = $1", image["id"])
    assert client.delete(f"/delete/{image['id']}", headers=bearer(TOKEN_B)).status_code == 200


def test_a_person_whose_subject_looks_like_a_token_cannot_act_for_tokens(make_oidc_client, sign_in, settings):
    client = make_oidc_client(api_tokens=(TOKEN_A,))
    current = upload_with(client, TOKEN_A)
    legacy = upload_with(client, TOKEN_A)
    run_sql(settings.database_url, "UPDATE images SET uploader_sub = 'token:service' WHERE id = $1", legacy["id"])
    hash_a = hashlib.sha256(TOKEN_A.encode()).hexdigest()[:12]
    for subject in ("token:service", f"token:{hash_a}"):
        client.cookies.clear()
        assert sign_in(client, subject, ["appuser"], "mallory").status_code == 303
        for image in (current, legacy):
            refused = client.delete(f"/delete/{image['id']}", headers=JSON)
            assert refused.status_code == 403, (subject, refused.text)
        mine = upload(client, png_bytes(), "mine.png", headers=JSON).json()
        assert uploader_of(settings.database_url, mine["id"]) == f"oidc:{subject}"
    assert (
        run_sql(settings.database_url, "SELECT count(*) FROM images WHERE id = ANY($1)", [current["id"], legacy["id"]])[
            0
        ][0]
        == 2
    )


def test_logs_stay_for_service_tokens_whatever_their_identity(make_client):
    client = make_client(api_tokens=(TOKEN_A, TOKEN_B))
    for token in (TOKEN_A, TOKEN_B):
        assert client.get("/logs", headers=bearer(token)).status_code == 200
