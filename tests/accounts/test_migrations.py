"""The accounts migrations on a database that has rows from before them."""

from __future__ import annotations

from tests.conftest import run_sql
from tests.test_migrations import piccolo

IMAGES_BEFORE_NAMESPACES = "2026-11-24T02:00:00:000000"  # images_0008
ACCOUNTS_BEFORE_LIFETIMES = "2026-11-24T00:51:53:144027"  # accounts_0001


def test_people_get_the_oidc_prefix_and_tokens_keep_no_expiry(database_url):
    run_sql(database_url, "DROP DATABASE IF EXISTS accounts_migration_test")
    run_sql(database_url, "CREATE DATABASE accounts_migration_test")
    fresh = database_url.replace("/images_test?", "/accounts_migration_test?")
    piccolo(fresh, "forwards", "images", f"--migration_id={IMAGES_BEFORE_NAMESPACES}")
    piccolo(fresh, "forwards", "accounts", f"--migration_id={ACCOUNTS_BEFORE_LIFETIMES}")
    uploaders = {"A": "alice", "B": "token:service", "C": "token:operator", "D": None, "E": "token:abc"}
    for letter, uploader in uploaders.items():
        run_sql(
            fresh,
            "INSERT INTO images (stored_name, original_name, size_bytes, file_format, sha256, delete_key_hash,"
            " uploader_sub, uploader_name) VALUES ($1, 'x', 1, 'PNG', '', '', $2, $2)",
            letter * 22 + ".png",
            uploader,
        )
    run_sql(
        fresh,
        "INSERT INTO api_tokens (owner_sub, owner_name, owner_role, name, token_hash, prefix, created_at)"
        " VALUES ('alice', 'alice', 2, 'laptop', 'h1', 'ih_1', '2026-01-02T03:04:05Z'),"
        " ('token:abc', 'tricky', 2, 'x', 'h2', 'ih_2', '2026-01-01T00:00:00Z')",
    )
    piccolo(fresh, "forwards", "all")

    found = {row["stored_name"][0]: row["uploader_sub"] for row in run_sql(fresh, "SELECT * FROM images")}
    # The two values tokens wrote stay; every subject a provider gave is namespaced.
    assert found == {"A": "oidc:alice", "B": "token:service", "C": "token:operator", "D": None, "E": "oidc:token:abc"}
    totals = {row["uploader_sub"]: row["images"] for row in run_sql(fresh, "SELECT * FROM image_uploader_totals")}
    assert totals == {"oidc:alice": 1, "token:service": 1, "token:operator": 1, "": 1, "oidc:token:abc": 1}
    tokens = run_sql(fresh, "SELECT owner_sub, expires_at, expiry_chosen FROM api_tokens ORDER BY id")
    assert [tuple(row) for row in tokens] == [("oidc:alice", None, False), ("oidc:token:abc", None, False)]
    people = run_sql(fresh, "SELECT sub, name, role, last_sign_in_at, sessions_valid_after FROM people ORDER BY sub")
    assert [(row["sub"], row["name"], row["role"]) for row in people] == [
        ("oidc:alice", "alice", 2),
        ("oidc:token:abc", "tricky", 2),
    ]
    assert people[0]["last_sign_in_at"].isoformat() == "2026-01-02T03:04:05+00:00"
    assert people[0]["sessions_valid_after"] is None

    piccolo(fresh, "backwards", "accounts", "--migration_id=2026-12-01T22:51:30:000000", "--auto_agree")
    piccolo(fresh, "backwards", "images", "--migration_id=2026-12-01T22:51:00:000000", "--auto_agree")
    assert {row["uploader_sub"] for row in run_sql(fresh, "SELECT * FROM images")} == {
        "alice",
        "token:service",
        "token:operator",
        None,
        "token:abc",
    }
    assert [row[0] for row in run_sql(fresh, "SELECT owner_sub FROM api_tokens ORDER BY id")] == ["alice", "token:abc"]
