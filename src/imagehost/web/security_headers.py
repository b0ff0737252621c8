"""Security headers on every answer of the app: its own pages get a Content-Security-Policy that
allows only our own scripts and styles, and no framing. Answers that set their own policy (direct
links, thumbnails and downloads carry a sandbox) keep theirs: browsers enforce every CSP header
they get, so there is never a second one (nginx adds none on proxied routes either). The embed
paths (/embed/...) are the one exception to "no framing": embeds/framing.py gives them their own
policy, CORS and no cookies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from litestar.types import Message, Scope

from imagehost.embeds.framing import embed_headers, embed_policy, is_embed_path
from imagehost.settings import Settings

REFERRER_POLICY = "strict-origin-when-cross-origin"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def page_policy(settings: Settings) -> str:
    """The CSP of the app's own pages. Images may come from IMAGES_BASE_URL's host; the sign-out form
    ends at the OpenID provider (form-action covers the redirect it follows)."""
    images = origin_of(settings.images_base_url)
    provider = origin_of(settings.oidc_issuer) if settings.oidc_enabled else ""
    directives = [
        "default-src 'self'",
        " ".join(filter(None, ["img-src 'self' data:", images])),
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        " ".join(filter(None, ["form-action 'self'", provider])),
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


def security_headers(settings: Settings) -> Callable[[Message, Scope], Awaitable[None]]:
    """A before-send hook: Litestar runs it on every answer, its own 404s and errors included
    (which an app middleware would not see)."""
    policy = page_policy(settings).encode()
    embeds = embed_policy(settings).encode()

    async def add_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = list(message.get("headers", []))
        if is_embed_path(scope.get("path", "")):
            headers = embed_headers(settings, embeds, scope, headers)  # type: ignore[arg-type]
        present = {bytes(name).lower() for name, _ in headers}
        if b"content-security-policy" not in present:
            headers.append((b"content-security-policy", policy))
        if b"referrer-policy" not in present:
            headers.append((b"referrer-policy", REFERRER_POLICY.encode()))
        if b"x-content-type-options" not in present:
            headers.append((b"x-content-type-options", b"nosniff"))
        message["headers"] = headers  # type: ignore[typeddict-unknown-key]

    return add_headers
