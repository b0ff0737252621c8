"""Credentials that end: token expiry, the people table (last sign-in, sessions valid after), and
owners recorded as `oidc:<subject>`.

Every api_tokens row was made by a signed-in person, so every owner is a provider's subject and
gets the prefix. Tokens made before this have no expiry (`expiry_chosen` false: the profile page
marks them). Each owner gets a people row whose last sign-in is their newest token's creation (a
token is made while signed in): TOKEN_OWNER_MAX_AGE_DAYS counts from there until they sign in.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-01T22:51:30:000000"
VERSION = "1.38.0"
DESCRIPTION = "Token expiry, people (last sign-in, sessions valid after), oidc: owners."

FORWARD_SQL = [
    "ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz NULL",
    "ALTER TABLE api_tokens ADD COLUMN expiry_chosen boolean NOT NULL DEFAULT false",
    "UPDATE api_tokens SET owner_sub = 'oidc:' || owner_sub",
    "CREATE TABLE people (id serial PRIMARY KEY, sub varchar(255) NOT NULL UNIQUE,"
    " name varchar(255) NOT NULL DEFAULT '', role smallint NOT NULL DEFAULT 0,"
    " last_sign_in_at timestamptz NULL, sessions_valid_after timestamptz NULL)",
    "INSERT INTO people (sub, name, role, last_sign_in_at)"
    " SELECT owner_sub, max(owner_name), max(owner_role), max(created_at) FROM api_tokens GROUP BY owner_sub",
]
BACKWARD_SQL = [
    "DROP TABLE IF EXISTS people",
    "UPDATE api_tokens SET owner_sub = substr(owner_sub, 6) WHERE owner_sub LIKE 'oidc:%'",
    "ALTER TABLE api_tokens DROP COLUMN IF EXISTS expiry_chosen",
    "ALTER TABLE api_tokens DROP COLUMN IF EXISTS expires_at",
]


class RawSQL(Table):
    pass


async def run_forward_sql():
    for statement in FORWARD_SQL:
        await RawSQL.raw(statement)


async def run_backward_sql():
    for statement in BACKWARD_SQL:
        await RawSQL.raw(statement)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="accounts", description=DESCRIPTION)
    manager.add_raw(run_forward_sql)
    manager.add_raw_backwards(run_backward_sql)
    return manager
