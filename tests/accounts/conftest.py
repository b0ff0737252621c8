"""A real OpenID Connect provider (the oidc-provider-mock package) on loopback, and the login a
browser goes through: the app sends it to the provider, the person picks who they are on the
provider's page, and the provider sends the browser back to /auth/callback with a code."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from tests.live import free_port, wait_until_healthy

CLIENT_ID = "imagehost"
CLIENT_SECRET = "secret"  # the mock provider accepts any secret
SITE = "http://testserver.local"
CALLBACK = f"{SITE}/auth/callback"


@dataclass
class Provider:
    """The provider process, and the HTTP a browser and an administrator would use with it."""

    url: str
    http: httpx.Client
    metadata: dict

    def set_user(self, sub: str, claims: dict) -> None:
        """What the provider says about `sub` in the ID token and at userinfo from now on."""
        response = self.http.put(f"{self.url}/users/{sub}", json=claims)
        assert response.status_code == 204, response.text


@pytest.fixture(scope="session")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    output_path = Path(tmp_path_factory.mktemp("oidc-provider")) / "provider.out"
    output = output_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "oidc_provider_mock", "--port", str(port), "--host", "127.0.0.1"],
        env={**os.environ, "NO_COLOR": "1"},
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    http = httpx.Client(timeout=10)
    try:
        discovery_url = f"{url}/.well-known/openid-configuration"
        wait_until_healthy(discovery_url, process, "the OIDC provider", output_path.read_text, 20)
        discovery = http.get(discovery_url)
        yield Provider(url=url, http=http, metadata=discovery.json())
    finally:
        http.close()
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        output.close()


@pytest.fixture
def make_oidc_client(make_client, provider: Provider):
    """The app with sign-in through the provider; other settings may be changed too."""

    def build(**changes: object) -> TestClient:
        oidc = {"oidc_issuer": provider.url, "oidc_client_id": CLIENT_ID, "oidc_client_secret": CLIENT_SECRET}
        return make_client(**{**oidc, **changes})

    return build


@pytest.fixture
def oidc_client(make_oidc_client) -> TestClient:
    return make_oidc_client()


def start_login(client: TestClient, provider: Provider, next_path: str | None = None) -> httpx.URL:
    """GET /login: the app answers with a redirect to the provider's authorization endpoint."""
    response = client.get("/login", params={"next": next_path} if next_path else None, follow_redirects=False)
    assert response.status_code == 303, response.text
    url = httpx.URL(response.headers["location"])
    assert str(url.copy_with(query=None)) == provider.metadata["authorization_endpoint"]
    params = url.params
    assert params["response_type"] == "code"
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == CALLBACK
    assert "openid" in params["scope"].split()
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43  # base64url of a SHA-256 digest, unpadded
    assert len(params["state"]) >= 20 and len(params["nonce"]) >= 20
    return url


def authorize_at_provider(provider: Provider, authorization_url: httpx.URL, sub: str) -> httpx.URL:
    """What the person does on the provider's page: open it, enter `sub`, submit. Returns where
    the provider sends the browser back to (the app's callback with code and state)."""
    page = provider.http.get(authorization_url)
    assert page.status_code == 200 and 'name="sub"' in page.text, page.text
    answer = provider.http.post(authorization_url, data={"sub": sub})
    assert answer.status_code == 302, answer.text
    back = httpx.URL(answer.headers["location"])
    assert str(back.copy_with(query=None)) == CALLBACK
    return back


def set_roles(provider: Provider, sub: str, roles: Iterable[str] = (), name: str | None = None) -> None:
    """Keycloak's way: the realm roles in `realm_access.roles`, the name in `preferred_username`."""
    provider.set_user(sub, {"preferred_username": name or sub, "realm_access": {"roles": list(roles)}})


def sign_in_as(
    provider: Provider,
    client: TestClient,
    sub: str,
    roles: Iterable[str] = (),
    name: str | None = None,
    next_path: str | None = None,
    claims: dict | None = None,
) -> httpx.Response:
    """The whole login of one browser (the client's cookies) as `sub`; returns the callback's answer.

    `claims` replaces the default claims (preferred_username and realm_access.roles) entirely.
    """
    if claims is None:
        set_roles(provider, sub, roles, name)
    else:
        provider.set_user(sub, claims)
    back = authorize_at_provider(provider, start_login(client, provider, next_path), sub)
    return client.get(f"/auth/callback?{back.query.decode()}", follow_redirects=False)


@pytest.fixture
def sign_in(provider: Provider):
    """`sign_in(client, sub, roles=[...], name=...)`: see sign_in_as."""

    def go(client: TestClient, sub: str, roles: Iterable[str] = (), name: str | None = None, **options: object):
        return sign_in_as(provider, client, sub, roles, name, **options)  # type: ignore[arg-type]

    return go
