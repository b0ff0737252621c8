from tests.accounts.conftest import make_oidc_client, provider, sign_in  # noqa: F401 (the OIDC fixtures)
