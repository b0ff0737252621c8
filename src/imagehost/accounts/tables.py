from piccolo.columns import SmallInt, Timestamptz, Varchar
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
