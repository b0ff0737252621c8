"""OpenID Connect, authorization code flow with PKCE, with Authlib: discovery, the authorization
URL, the code exchange, and ID token validation (signature from the provider's JWKS, issuer,
audience, expiry, nonce, at_hash: Authlib's CodeIDToken does the checks)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from imagehost.settings import Settings

DISCOVERY_TTL_SECONDS = 3600
SCOPE = "openid profile email"


class OIDCError(Exception):
    """The provider refused, or gave something we cannot trust. The message is safe to log."""


@dataclass
class PendingLogin:
    """What we keep in the session between /login and /auth/callback."""

    state: str
    nonce: str
    code_verifier: str
    next: str
    started: float

    def to_session(self) -> dict[str, Any]:
        return self.__dict__.copy()

    @classmethod
    def from_session(cls, value: Any) -> PendingLogin | None:
        try:
            return cls(**value)
        except TypeError:
            return None


@dataclass
class SignedIn:
    claims: dict[str, Any]
    id_token: str


@dataclass
class OIDCClient:
    settings: Settings
    _metadata: dict[str, Any] = field(default_factory=dict)
    _metadata_at: float = 0.0
    _jwks: dict[str, Any] | None = None

    def _client(self, redirect_uri: str = "") -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.settings.oidc_client_id,
            client_secret=self.settings.oidc_client_secret or None,
            token_endpoint_auth_method="client_secret_basic" if self.settings.oidc_client_secret else "none",
            code_challenge_method="S256",
            redirect_uri=redirect_uri or None,
            scope=SCOPE,
            timeout=10,
        )

    async def metadata(self) -> dict[str, Any]:
        if not self._metadata or time.monotonic() - self._metadata_at > DISCOVERY_TTL_SECONDS:
            url = f"{self.settings.oidc_issuer}/.well-known/openid-configuration"
            try:
                async with httpx.AsyncClient(timeout=10) as http:
                    response = await http.get(url)
                    response.raise_for_status()
                    self._metadata = response.json()
            except (httpx.HTTPError, ValueError) as error:
                raise OIDCError(f"provider discovery failed ({type(error).__name__})") from None
            self._metadata_at = time.monotonic()
            self._jwks = None
        return self._metadata

    async def start(self, redirect_uri: str, next_path: str) -> tuple[str, PendingLogin]:
        metadata = await self.metadata()
        pending = PendingLogin(
            state=generate_token(32),
            nonce=generate_token(32),
            code_verifier=generate_token(64),
            next=next_path,
            started=time.time(),
        )
        async with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"],
                state=pending.state,
                code_verifier=pending.code_verifier,
                nonce=pending.nonce,
            )
        return url, pending

    async def finish(self, pending: PendingLogin, code: str, redirect_uri: str) -> SignedIn:
        metadata = await self.metadata()
        try:
            async with self._client(redirect_uri) as client:
                token = await client.fetch_token(
                    metadata["token_endpoint"], code=code, code_verifier=pending.code_verifier
                )
        except Exception as error:  # Authlib raises OAuthError, httpx its own: both mean "no token"
            raise OIDCError(f"the code exchange failed ({type(error).__name__})") from None
        if "id_token" not in token:
            raise OIDCError("the provider sent no ID token")
        claims = await self._validated_claims(token, pending.nonce)
        userinfo = await self._userinfo(token.get("access_token"))
        # The ID token is authoritative; userinfo may add claims (roles) but never change `sub`.
        merged = {**userinfo, **claims} if userinfo.get("sub") in (None, claims["sub"]) else claims
        return SignedIn(claims=merged, id_token=token["id_token"])

    async def logout_url(self, id_token: str | None, after: str) -> str | None:
        metadata = await self.metadata()
        endpoint = metadata.get("end_session_endpoint")
        if not endpoint:
            return None
        params = {"post_logout_redirect_uri": after, "client_id": self.settings.oidc_client_id}
        if id_token:
            params["id_token_hint"] = id_token
        return str(httpx.URL(endpoint, params=params))

    async def _key_set(self, force: bool = False) -> KeySet:
        if self._jwks is None or force:
            metadata = await self.metadata()
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.get(metadata["jwks_uri"])
                response.raise_for_status()
                self._jwks = response.json()
        return KeySet.import_key_set(self._jwks)

    async def _validated_claims(self, token: dict[str, Any], nonce: str) -> dict[str, Any]:
        metadata = await self.metadata()
        algorithms = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
        try:
            try:
                decoded = jwt.decode(token["id_token"], key=await self._key_set(), registry=registry)
            except InvalidKeyIdError:  # the provider rotated its keys
                decoded = jwt.decode(token["id_token"], key=await self._key_set(force=True), registry=registry)
            claims = CodeIDToken(
                decoded.claims,
                decoded.header,
                {"iss": {"values": [metadata.get("issuer", self.settings.oidc_issuer)]}},
                {"nonce": nonce, "client_id": self.settings.oidc_client_id, "access_token": token.get("access_token")},
            )
            claims.validate(leeway=60)
        except Exception as error:  # joserfc and Authlib raise many kinds: each means "do not trust"
            raise OIDCError(f"the ID token is not valid ({type(error).__name__})") from None
        return dict(claims)

    async def _userinfo(self, access_token: str | None) -> dict[str, Any]:
        metadata = await self.metadata()
        if not access_token or not metadata.get("userinfo_endpoint"):
            return {}
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.get(
                    metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {access_token}"}
                )
                response.raise_for_status()
                return dict(response.json())
        except (httpx.HTTPError, ValueError):
            return {}
