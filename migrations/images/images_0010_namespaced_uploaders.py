"""People's identities get the `oidc:` prefix, so that none can equal a token's (`token:...`).

Only two values were ever written by tokens: `token:service` (any of API_TOKENS: which one was not
recorded, so these rows stay a legacy service identity) and `token:operator` (ADMIN_TOKEN). Every
other uploader is a provider's subject. The statistics triggers move the per-uploader totals.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-01T22:51:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Uploaders who signed in are recorded as oidc:<subject>."


class RawSQL(Table):
    pass


async def prefix_people():
    await RawSQL.raw(
        "UPDATE images SET uploader_sub = 'oidc:' || uploader_sub"
        " WHERE uploader_sub IS NOT NULL AND uploader_sub NOT IN ('token:service', 'token:operator')"
    )
    await RawSQL.raw("DELETE FROM image_uploader_totals WHERE images <= 0")


async def unprefix_people():
    await RawSQL.raw("UPDATE images SET uploader_sub = substr(uploader_sub, 6) WHERE uploader_sub LIKE 'oidc:%'")
    await RawSQL.raw("DELETE FROM image_uploader_totals WHERE images <= 0")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="images", description=DESCRIPTION)
    manager.add_raw(prefix_people)
    manager.add_raw_backwards(unprefix_people)
    return manager
