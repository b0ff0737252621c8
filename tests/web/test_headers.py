"""Security headers on the app's own pages: CSP (own scripts and styles only, no framing),
Referrer-Policy and nosniff; served images keep their own sandbox policy."""

from __future__ import annotations

from imagehost.web.security_headers import page_policy
from tests.conftest import HTML, png_bytes, upload


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


def test_pages_fragments_json_and_errors_carry_the_policy(client):
    body = upload(client, png_bytes()).json()
    answers = [
        client.get("/", headers=HTML),
        client.get("/upload", headers=HTML),
        client.get("/images/", headers={"HX-Request": "true"}),
        client.get("/images-list"),
        client.get(f"/i/{body['filename']}", headers=HTML),
        client.get("/no/such/page", headers=HTML),
    ]
    for response in answers:
        assert response.headers.get_list("content-security-policy") == [response.headers["content-security-policy"]]
        policy = directives(response.headers["content-security-policy"])
        assert policy["default-src"] == ["'self'"]
        assert policy["script-src"] == ["'self'"]  # no inline script, no eval
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["img-src"] == ["'self'", "data:"]
        assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_served_images_keep_their_own_sandbox_policy_alone(client):
    body = upload(client, png_bytes()).json()
    for path in (f"/images/{body['filename']}", "/images/nothing-here-at-all-xxxxx.png", f"/download/{body['id']}"):
        response = client.get(path)
        policies = response.headers.get_list("content-security-policy")
        assert len(policies) == 1 and "sandbox" in policies[0], path


def test_images_on_another_host_and_the_providers_sign_out_are_allowed(settings):
    from dataclasses import replace

    policy = directives(
        page_policy(
            replace(
                settings,
                images_base_url="https://cdn.example.net/sub",
                oidc_issuer="https://id.example.org/realms/x",
                oidc_client_id="imagehost",
            )
        )
    )
    assert policy["img-src"] == ["'self'", "data:", "https://cdn.example.net"]
    assert policy["form-action"] == ["'self'", "https://id.example.org"]


def test_pages_use_no_inline_script_or_style(client):
    """What the policy would block: the templates have no inline script, style element or attribute."""
    from html.parser import HTMLParser

    class Inline(HTMLParser):
        found: list[str]

        def handle_starttag(self, tag, attrs):
            names = dict(attrs)
            if tag == "script" and "src" not in names:
                self.found.append("inline <script>")
            if tag == "style" or "style" in names or any(name.startswith("on") for name in names):
                self.found.append(f"inline style or handler on <{tag}>")

    body = upload(client, png_bytes()).json()
    for path in ("/", "/upload", "/images/", f"/i/{body['filename']}"):
        parser = Inline()
        parser.found = []
        parser.feed(client.get(path, headers=HTML).text)
        assert parser.found == [], path
