"""Every route of the app, walked as every kind of caller, with the answer each must get.

The list of routes comes from the app itself: a new route without an entry here fails the test.
"""

from __future__ import annotations

import io
import itertools
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from litestar.routes import HTTPRoute

from tests.conftest import png_bytes, run_sql

SERVICE_TOKEN = "matrix-service-token"
ACTORS = ("anonymous", "viewer", "user", "admin", "token", "revoked", "service")
JSON = {"Accept": "application/json"}


@dataclass
class World:
    """What the walk needs: an image by someone else, fresh images to delete, tokens to revoke."""

    client: object
    cookies: dict[str, list]
    tokens: dict[str, str]
    image: dict
    fresh: Callable[[], dict]
    user_token_id: Callable[[], int]
    leaver_id: int  # a person whose access the admin ends


@dataclass
class Case:
    method: str
    path: str  # the route as the app declares it
    url: Callable[[World], str]
    expect: dict[str, int]  # actor -> status
    data: dict | Callable[[World], dict] | None = None  # a callable is asked after `url`
    json: Callable[[World], object] | None = None
    files: Callable[[], dict] | None = None
    headers: dict = field(default_factory=lambda: dict(JSON))


def everyone(status: int, **others: int) -> dict[str, int]:
    return {actor: others.get(actor, status) for actor in ACTORS}


BROWSE = everyone(200, anonymous=401, revoked=401)
PUBLIC = everyone(200, revoked=401)  # a wrong token is refused wherever it is shown
ALBUM_NUMBERS = itertools.count(1)
MANAGE_ALBUM = everyone(403, anonymous=401, admin=200, revoked=401)  # admins and the album's creator


def album_zip(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name}/SKU1/a.png", png_bytes())
    return buffer.getvalue()


def new_album() -> str:
    return f"matrix-album-{next(ALBUM_NUMBERS)}"


def owned_album(w: World) -> str:
    """A new album of someone else's (the owner's), with one article SKU1."""
    name = new_album()
    client = w.client
    saved = list(client.cookies.jar)  # type: ignore[attr-defined]
    w.as_actor("owner")  # type: ignore[attr-defined]
    files = {"zipfile": (f"{name}.zip", album_zip(name))}
    response = client.post("/api/upload", files=files, headers=JSON)  # type: ignore[attr-defined]
    assert response.status_code == 201, response.text
    client.cookies.clear()  # type: ignore[attr-defined]
    for cookie in saved:
        client.cookies.jar.set_cookie(cookie)  # type: ignore[attr-defined]
    return name


def owned_job(w: World) -> str:
    """The URL of a finished ZIP job the owner started (written as a job that outlived its wait)."""
    from imagehost.albums.jobs import job_key, new_job_id

    name = owned_album(w)
    database_url = w.client.app.state.settings.database_url  # type: ignore[attr-defined]
    owner = run_sql(database_url, "SELECT created_by_sub FROM albums WHERE name = $1", name)[0][0]
    job_id = new_job_id()
    run_sql(
        database_url,
        "INSERT INTO upload_jobs (id, state, archive_name, album_name, mode, started_by_sub, total, runner)"
        " VALUES ($1, 'done', $2, $3, 'merge', $4, 0, 'matrix')",
        job_key(job_id),
        f"{name}.zip",
        name,
        owner,
    )
    return f"/api/jobs/{job_id}"


def album_image(w: World, name: str | None = None) -> int:
    """An image of the album `name`, else of the album made last (the one `url` just made)."""
    database_url = w.client.app.state.settings.database_url  # type: ignore[attr-defined]
    query = "SELECT ai.image FROM album_images ai JOIN albums al ON al.id = ai.album"
    if name is None:
        return run_sql(database_url, query + " ORDER BY al.id DESC LIMIT 1")[0][0]
    return run_sql(database_url, query + " WHERE al.name = $1 LIMIT 1", name)[0][0]


def moved_into_sku2(w: World) -> dict:
    name = owned_album(w)
    return {"image_ids": [album_image(w, name)], "album_name": name, "article_name": "SKU2"}


CASES = [
    Case("GET", "/", lambda w: "/", PUBLIC),
    Case("GET", "/health", lambda w: "/health", PUBLIC),
    # The API's description and its page are public: they describe routes, not data.
    Case("GET", "/schema", lambda w: "/schema", PUBLIC),
    Case("GET", "/schema/openapi.json", lambda w: "/schema/openapi.json", PUBLIC),
    Case("GET", "/schema/{path:str}", lambda w: "/schema/nothing-here", everyone(404, revoked=401)),
    Case("GET", "/ready", lambda w: "/ready", PUBLIC),
    Case("GET", "/language/{code:str}", lambda w: "/language/ru", everyone(303, revoked=401)),
    Case("GET", "/login", lambda w: "/login", everyone(303, revoked=401)),
    Case("GET", "/auth/callback", lambda w: "/auth/callback?state=forged&code=forged", everyone(400, revoked=401)),
    Case("GET", "/profile", lambda w: "/profile", everyone(200, anonymous=401, token=401, revoked=401, service=401)),
    Case(
        "POST",
        "/profile/tokens",
        lambda w: "/profile/tokens",
        everyone(201, anonymous=401, token=401, revoked=401, service=401),
        data={"name": "matrix"},
    ),
    Case(
        "POST",
        "/profile/tokens/{token_id:int}/revoke",
        lambda w: f"/profile/tokens/{w.user_token_id()}/revoke",
        everyone(200, anonymous=401, viewer=404, token=401, revoked=401, service=401),
    ),
    Case(
        "DELETE",
        "/profile/tokens/{token_id:int}",
        lambda w: f"/profile/tokens/{w.user_token_id()}",
        everyone(200, anonymous=401, viewer=404, token=401, revoked=401, service=401),
    ),
    Case(
        "POST",
        "/profile/people/{person_id:int}/end-access",
        lambda w: f"/profile/people/{w.leaver_id}/end-access",
        everyone(403, anonymous=401, admin=200, token=401, revoked=401, service=401),
    ),
    Case("GET", "/upload", lambda w: "/upload", everyone(200, anonymous=401, viewer=403, revoked=401)),
    Case(
        "POST",
        "/upload",
        lambda w: "/upload",
        everyone(201, anonymous=401, viewer=403, revoked=401),
        files=lambda: {"file": ("m.png", png_bytes())},
    ),
    Case("GET", "/images", lambda w: "/images/", BROWSE),
    Case("GET", "/images-list", lambda w: "/images-list", BROWSE),
    Case("GET", "/images/{stored_name:str}", lambda w: f"/images/{w.image['filename']}", PUBLIC),
    Case("HEAD", "/images/{stored_name:str}", lambda w: f"/images/{w.image['filename']}", PUBLIC),
    Case(
        "GET",
        "/images/thumbs/{size:int}/{thumbnail_name:str}",
        lambda w: f"/images/thumbs/160/{w.image['filename']}.webp",
        PUBLIC,
    ),
    Case(
        "HEAD",
        "/images/thumbs/{size:int}/{thumbnail_name:str}",
        lambda w: f"/images/thumbs/160/{w.image['filename']}.webp",
        PUBLIC,
    ),
    Case("GET", "/i/{stored_name:str}", lambda w: f"/i/{w.image['filename']}", BROWSE),
    Case("GET", "/download/{image_id:int}", lambda w: f"/download/{w.image['id']}", BROWSE),
    Case("HEAD", "/download/{image_id:int}", lambda w: f"/download/{w.image['id']}", BROWSE),
    Case(
        "DELETE",
        "/delete/{image_id:int}",
        lambda w: f"/delete/{w.fresh()['id']}",
        everyone(403, admin=200, revoked=401),
    ),
    Case(
        "POST", "/delete/{image_id:int}", lambda w: f"/delete/{w.fresh()['id']}", everyone(403, admin=200, revoked=401)
    ),
    # The confirmation page of a delete link: for whoever the delete would be allowed to.
    Case(
        "GET", "/delete/{image_id:int}", lambda w: f"/delete/{w.fresh()['id']}", everyone(403, admin=200, revoked=401)
    ),
    Case(
        "POST",
        "/api/images",
        lambda w: "/api/images",
        everyone(401, token=201, service=201),
        files=lambda: {"file": ("m.png", png_bytes())},
    ),
    Case(
        "GET",
        "/api/images/{image_id:int}",
        lambda w: f"/api/images/{w.image['id']}",
        everyone(401, token=200, service=200),
    ),
    Case("GET", "/logs", lambda w: "/logs", everyone(401, token=403, service=200)),
    Case("GET", "/ops/stats", lambda w: "/ops/stats", everyone(403, anonymous=401, admin=200, revoked=401)),
    Case("GET", "/ops/logs", lambda w: "/ops/logs", everyone(403, anonymous=401, admin=200, revoked=401)),
    # Metrics: admins (and the METRICS_TOKEN holder, tests/metrics); a service token is no metrics token.
    Case("GET", "/metrics", lambda w: "/metrics", everyone(403, anonymous=401, admin=200, revoked=401)),
    # The consistency check: admins only (a session or an admin's token); service tokens are refused too.
    Case("POST", "/api/sync", lambda w: "/api/sync", everyone(403, anonymous=401, admin=200, revoked=401)),
    Case("GET", "/ops/check", lambda w: "/ops/check", everyone(403, anonymous=401, admin=200, revoked=401)),
    Case("POST", "/ops/check", lambda w: "/ops/check", everyone(403, anonymous=401, admin=200, revoked=401)),
    Case("GET", "/_auth/images", lambda w: "/_auth/images", everyone(204, revoked=401)),  # PRIVATE_IMAGES off
    # Albums (PicHosting's API): users upload into new albums; only admins and the creator delete.
    Case(
        "POST",
        "/api/upload",
        lambda w: "/api/upload",
        everyone(201, anonymous=401, viewer=403, revoked=401),
        files=lambda: {"zipfile": ("m.zip", album_zip(new_album()))},
    ),
    Case("GET", "/api/albums", lambda w: "/api/albums", BROWSE),
    # A ZIP's job: its starter and admins (anyone holding the id of an anonymous upload's job).
    Case("GET", "/api/jobs/{job_id:str}", owned_job, everyone(404, admin=200, revoked=401)),
    Case("GET", "/api/articles/{album:str}", lambda w: f"/api/articles/{owned_album(w)}", BROWSE),
    Case("GET", "/api/files/{album:str}", lambda w: f"/api/files/{owned_album(w)}", BROWSE),
    Case("GET", "/api/files/{album:str}/{article:str}", lambda w: f"/api/files/{owned_album(w)}/SKU1", BROWSE),
    Case("GET", "/api/thumbnails/{album:str}", lambda w: f"/api/thumbnails/{owned_album(w)}", BROWSE),
    Case(
        "GET",
        "/api/thumbnails/{album:str}/{article:str}",
        lambda w: f"/api/thumbnails/{owned_album(w)}/SKU1",
        BROWSE,
    ),
    Case("GET", "/api/count/album/{album:str}", lambda w: f"/api/count/album/{owned_album(w)}", BROWSE),
    Case(
        "GET",
        "/api/count/article/{album:str}/{article:str}",
        lambda w: f"/api/count/article/{owned_album(w)}/SKU1",
        BROWSE,
    ),
    Case(
        "DELETE",
        "/api/delete-album/{album:str}",
        lambda w: f"/api/delete-album/{owned_album(w)}",
        everyone(403, anonymous=401, admin=200, revoked=401),
    ),
    Case(
        "DELETE",
        "/api/delete-article/{album:str}/{article:str}",
        lambda w: f"/api/delete-article/{owned_album(w)}/SKU1",
        everyone(403, anonymous=401, admin=200, revoked=401),
    ),
    # The album pages (JSON here): browsing as the API; deleting as the API's deletes.
    Case("GET", "/albums", lambda w: "/albums", BROWSE),
    Case("GET", "/albums/{album:str}", lambda w: f"/albums/{owned_album(w)}", BROWSE),
    Case("GET", "/albums/{album:str}/{article:str}", lambda w: f"/albums/{owned_album(w)}/SKU1", BROWSE),
    # Embeds for other sites (JSON here): whoever may browse, as the pages they come from.
    Case("GET", "/embed/i/{stored_name:str}", lambda w: f"/embed/i/{w.image['filename']}", BROWSE),
    Case("GET", "/embed/album/{album:str}", lambda w: f"/embed/album/{owned_album(w)}", BROWSE),
    Case("GET", "/embed/album/{album:str}/{article:str}", lambda w: f"/embed/album/{owned_album(w)}/SKU1", BROWSE),
    Case("GET", "/embed/latest", lambda w: "/embed/latest?limit=5", BROWSE),
    *(
        Case(method, "/albums/{album:str}", lambda w: f"/albums/{owned_album(w)}", MANAGE_ALBUM)
        for method in ("DELETE", "POST")
    ),
    *(
        Case(method, "/albums/{album:str}/{article:str}", lambda w: f"/albums/{owned_album(w)}/SKU1", MANAGE_ALBUM)
        for method in ("DELETE", "POST")
    ),
    # Renaming, moving, reordering: admins and the album's creator, in the API and the pages' forms.
    Case(
        "POST",
        "/api/rename-album/{album:str}",
        lambda w: f"/api/rename-album/{owned_album(w)}",
        MANAGE_ALBUM,
        json=lambda w: {"new_name": "matrix-renamed-by-api"},
    ),
    Case(
        "POST",
        "/api/rename-article/{album:str}/{article:str}",
        lambda w: f"/api/rename-article/{owned_album(w)}/SKU1",
        MANAGE_ALBUM,
        json=lambda w: {"new_name": "SKU-renamed"},
    ),
    Case("POST", "/api/move-images", lambda w: "/api/move-images", MANAGE_ALBUM, json=moved_into_sku2),
    Case(
        "POST",
        "/api/reorder/{album:str}/{article:str}",
        lambda w: f"/api/reorder/{owned_album(w)}/SKU1",
        MANAGE_ALBUM,
        json=lambda w: {"image_ids": [album_image(w)]},
    ),
    Case(
        "POST",
        "/rename-album/{album:str}",
        lambda w: f"/rename-album/{owned_album(w)}",
        MANAGE_ALBUM,
        data={"new_name": "matrix-renamed-by-form"},
    ),
    Case(
        "POST",
        "/rename-article/{album:str}/{article:str}",
        lambda w: f"/rename-article/{owned_album(w)}/SKU1",
        MANAGE_ALBUM,
        data={"new_name": "SKU-renamed"},
    ),
    Case(
        "POST",
        "/reorder/{album:str}/{article:str}",
        lambda w: f"/reorder/{owned_album(w)}/SKU1",
        MANAGE_ALBUM,
        data=lambda w: {"image_id": str(album_image(w)), "direction": "later"},
    ),
    Case(
        "POST",
        "/move-image/{album:str}/{article:str}",
        lambda w: f"/move-image/{owned_album(w)}/SKU1",
        MANAGE_ALBUM,
        data=lambda w: {"image_id": str(album_image(w)), "article_name": "SKU2"},
    ),
    # Exports: whoever may browse (PicHosting: viewers export).
    Case("GET", "/api/export-xlsx", lambda w: f"/api/export-xlsx?album_name={owned_album(w)}", BROWSE),
    Case("POST", "/api/export-xlsx", lambda w: f"/api/export-xlsx?album_name={owned_album(w)}", BROWSE),
    Case("GET", "/api/export-csv", lambda w: f"/api/export-csv?album_name={owned_album(w)}", BROWSE),
    Case("POST", "/api/export-csv", lambda w: f"/api/export-csv?album_name={owned_album(w)}", BROWSE),
    Case("GET", "/export/images.csv", lambda w: "/export/images.csv", BROWSE),
    Case("GET", "/export/images.xlsx", lambda w: "/export/images.xlsx", BROWSE),
    Case("GET", "/download/album/{album:str}", lambda w: f"/download/album/{owned_album(w)}", BROWSE),
    Case(
        "GET",
        "/download/album/{album:str}/{article:str}",
        lambda w: f"/download/album/{owned_album(w)}/SKU1",
        BROWSE,
    ),
    # oEmbed: what another site learns about a link, for whoever may browse.
    Case("GET", "/oembed", lambda w: f"/oembed?url=http://testserver.local/i/{w.image['filename']}", BROWSE),
    Case("GET", "/static/{file_path:path}", lambda w: "/static/site.css", PUBLIC),
    Case("HEAD", "/static/{file_path:path}", lambda w: "/static/site.css", PUBLIC),
    # Last: signing out ends every session of the person, so their cookies walk no further.
    Case("POST", "/logout", lambda w: "/logout", everyone(303, revoked=401)),
]


def declared_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                if method != "OPTIONS":
                    routes.add((method, route.path))
    return routes


def test_every_route_of_the_app_has_an_entry(make_oidc_client):
    client = make_oidc_client()
    declared = declared_routes(client.app)
    listed = {(case.method, case.path) for case in CASES}
    assert declared - listed == set(), "routes without an entry in the matrix"
    assert listed - declared == set(), "matrix entries for routes the app no longer has"


@pytest.fixture
def world(make_oidc_client, sign_in, provider, settings) -> World:
    client = make_oidc_client(api_tokens=(SERVICE_TOKEN,))
    cookies: dict[str, list] = {"anonymous": []}
    for actor, roles in (
        ("viewer", ["appviewer"]),
        ("user", ["appuser"]),
        ("admin", ["appadmin"]),
        ("owner", ["appuser"]),
        ("leaver", ["appuser"]),
    ):
        client.cookies.clear()
        assert sign_in(client, actor, roles=roles).status_code == 303
        cookies[actor] = list(client.cookies.jar)

    def restore(saved: list) -> None:
        client.cookies.clear()
        for cookie in saved:
            client.cookies.jar.set_cookie(cookie)

    def as_actor(actor: str) -> None:
        restore(cookies.get(actor, []))

    def create_token(actor: str) -> tuple[str, int]:
        as_actor(actor)
        body = client.post("/profile/tokens", data={"name": f"{actor}-token"}, headers=JSON).json()
        return body["token"], body["id"]

    user_token, _ = create_token("user")
    revoked_token, revoked_id = create_token("user")
    as_actor("user")
    assert client.delete(f"/profile/tokens/{revoked_id}", headers=JSON).status_code == 200

    def fresh() -> dict:
        saved = list(client.cookies.jar)
        as_actor("owner")
        body = client.post("/upload", files={"file": ("owned.png", png_bytes(600, 300))}, headers=JSON).json()
        restore(saved)
        return body

    def user_token_id() -> int:
        saved = list(client.cookies.jar)
        _, token_id = create_token("user")
        restore(saved)
        return token_id

    world = World(
        client=client,
        cookies=cookies,
        tokens={"token": user_token, "revoked": revoked_token, "service": SERVICE_TOKEN},
        image=fresh(),
        fresh=fresh,
        user_token_id=user_token_id,
        leaver_id=run_sql(settings.database_url, "SELECT id FROM people WHERE sub = 'oidc:leaver'")[0][0],
    )
    world.as_actor = as_actor  # type: ignore[attr-defined]
    return world


def test_the_matrix(world: World):
    client = world.client
    failures = []
    for case in CASES:
        for actor, expected in case.expect.items():
            url = case.url(world)  # before switching: preparing may sign in as someone else
            data = case.data(world) if callable(case.data) else case.data
            body = case.json(world) if case.json else None
            world.as_actor(actor if actor in world.cookies else "anonymous")  # type: ignore[attr-defined]
            headers = dict(case.headers)
            if actor in world.tokens:
                headers["Authorization"] = f"Bearer {world.tokens[actor]}"
            response = client.request(
                case.method,
                url,
                headers=headers,
                data=data,
                json=body,
                files=case.files() if case.files else None,
                follow_redirects=False,
            )
            if response.status_code != expected:
                failures.append(f"{case.method} {url} as {actor}: {response.status_code}, expected {expected}")
            assert response.status_code < 500, f"{case.method} {url} as {actor}: {response.text[:200]}"
    assert failures == [], "\n".join(failures)
