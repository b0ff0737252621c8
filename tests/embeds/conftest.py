from tests.accounts.conftest import make_oidc_client, provider, sign_in  # noqa: F401 (the OIDC fixtures)
from tests.test_browser import browser, context, page, playwright, screenshot  # noqa: F401 (the Chromium fixtures)
