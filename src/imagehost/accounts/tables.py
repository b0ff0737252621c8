from piccolo.columns import Boolean, SmallInt, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class ApiToken(Table, tablename="api_tokens"):
    """A personal API token. Only its SHA-256 is stored; the token itself is shown once."""

    owner_sub = Varchar(length=255, index=True)
    owner_name = Varchar(length=255)
    # The owner's role when they last signed in: a token acts with it, never with more.
    owner_role = SmallInt()
    name = Varchar(length=100)
    token_hash = Varchar(length=64, unique=True, secret=True)
    prefix = Varchar(length=12)
    created_at = Timestamptz(default=TimestamptzNow())
    last_used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)
    # None: never expires (chosen, or made before tokens had an expiry: then expiry_chosen is false).
    expires_at = Timestamptz(null=True, default=None)
    expiry_chosen = Boolean(default=False)


class Person(Table, tablename="people"):
    """Someone who signed in: when they last did, and from when their sessions count."""

    sub = Varchar(length=255, unique=True)  # the identity: oidc:<subject>
    name = Varchar(length=255)
    role = SmallInt()
    last_sign_in_at = Timestamptz(null=True, default=None)
    # Sessions begun at or before this are over (logout, or an admin ended them): every copy of
    # their cookie is anonymous from then on, in every app process.
    sessions_valid_after = Timestamptz(null=True, default=None)
