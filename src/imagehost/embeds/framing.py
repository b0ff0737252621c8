"""What lets another site show an embed, and nothing else of ours: the embed paths' own
Content-Security-Policy (frame-ancestors: EMBED_ORIGINS and the site itself), CORS for their
htmx fragments (the preflight that htmx's HX-* headers cause included), and no cookie set.

Applied to every answer under /embed/ by the before-send hook (web/security_headers.py), so that
errors, 304s and Litestar's own OPTIONS answers get them too; every other path keeps refusing
to be framed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from imagehost.settings import Settings

EMBED_PREFIX = "/embed/"
# What htmx 2 sends with an hx-get: its preflight asks for these.
HTMX_REQUEST_HEADERS = "hx-request, hx-current-url, hx-target, hx-trigger, hx-trigger-name, hx-boosted"
PREFLIGHT_MAX_AGE = 600
# Removed from every embed answer: another site's frame must not be refused, and an embed sets no
# cookie (the session is read to decide private-mode access, never written back from here).
DROPPED = {b"set-cookie", b"x-frame-options", b"content-security-policy"}


def is_embed_path(path: str) -> bool:
    return path.startswith(EMBED_PREFIX)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def anyone_may_embed(settings: Settings) -> bool:
    return "*" in settings.embed_origins


def frame_ancestors(settings: Settings) -> str:
    own = origin_of(settings.public_base_url)
    sources = ["'self'", *filter(None, [own]), *settings.embed_origins]
    return "frame-ancestors " + " ".join(dict.fromkeys(sources))


def embed_policy(settings: Settings) -> str:
    """No scripts at all; our own stylesheet and pictures; framing by the allowed origins."""
    own = [origin for origin in (origin_of(settings.public_base_url), origin_of(settings.images_base_url)) if origin]
    directives = [
        "default-src 'none'",
        " ".join(["img-src 'self' data:", *own]),
        " ".join(["style-src 'self'", *own]),
        "base-uri 'none'",
        "form-action 'none'",
        frame_ancestors(settings),
    ]
    return "; ".join(directives)


def allowed_origin(settings: Settings, origin: str, own_origin: str) -> str | None:
    """The Access-Control-Allow-Origin for a request from `origin`: `*` when anyone may embed, the
    origin itself when it is allowed (or the site's own), else None (the browser then refuses)."""
    if anyone_may_embed(settings):
        return "*"
    offered = origin.strip().rstrip("/").lower()
    if offered and offered in {*settings.embed_origins, origin_of(settings.public_base_url), own_origin}:
        return origin.strip()
    return None


def _request_origin(scope: dict) -> tuple[str, str]:
    """(the Origin header, the origin the request was sent to)."""
    headers = {bytes(name).lower(): bytes(value).decode("latin-1") for name, value in scope.get("headers", [])}
    own = f"{scope.get('scheme', 'http')}://{headers.get(b'host', '')}".lower()
    return headers.get(b"origin", ""), own


def embed_headers(settings: Settings, policy: bytes, scope: dict, headers: list) -> list:
    """An embed answer's headers: the app's own, less cookies and framing refusals, plus the embed
    policy and CORS (with the preflight's answers for an OPTIONS request)."""
    kept = [(name, value) for name, value in headers if bytes(name).lower() not in DROPPED]
    kept.append((b"content-security-policy", policy))
    origin, own = _request_origin(scope)
    allowed = allowed_origin(settings, origin, own) if origin else ("*" if anyone_may_embed(settings) else None)
    if allowed:
        kept.append((b"access-control-allow-origin", allowed.encode("latin-1")))
    if allowed and allowed != "*":
        # The answer names one origin: a cache must keep one copy per origin.
        vary = [value for name, value in kept if bytes(name).lower() == b"vary"]
        if not any(b"origin" in bytes(value).lower() for value in vary):
            kept.append((b"vary", b"Origin"))
    if scope.get("method") == "OPTIONS":
        kept += [
            (b"access-control-allow-methods", b"GET"),
            (b"access-control-allow-headers", HTMX_REQUEST_HEADERS.encode()),
            (b"access-control-max-age", str(PREFLIGHT_MAX_AGE).encode()),
        ]
    return kept
