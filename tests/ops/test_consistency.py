"""The consistency check and repair, against a real PostgreSQL and real files: uploads through the
app, then damage on disk, then the report, the repair, the command line, the API and the page."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image as PILImage

from imagehost.database import connected
from imagehost.images.storage import ImageStore
from imagehost.ops.consistency import (
    RECENT_SECONDS,
    CheckReport,
    ConsistencyCheck,
    load_last_report,
    run_check,
)
from imagehost.settings import Settings
from tests.accounts.conftest import make_oidc_client, provider, sign_in  # noqa: F401 (fixtures)
from tests.conftest import HTML, PROJECT_ROOT, png_bytes, run_sql, upload

HTMX = {"Accept": "*/*", "HX-Request": "true"}
JSON = {"Accept": "application/json"}
AN_HOUR_AGO = time.time() - 3600


def stop(client) -> None:
    """End the app (its lifespan closes its pool), so that the check opens its own connection as
    `just check` does. Closing twice is harmless: the fixture closes it again at the end."""
    client.__exit__(None, None, None)


def check(settings: Settings, repair: str | None = None) -> CheckReport:
    return asyncio.run(run_check(settings, repair))


def old_file(path: Path, content: bytes) -> Path:
    """A file written a while ago: the check leaves files younger than a minute for later."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO))
    return path


def jpeg_bytes(width: int = 600, height: int = 300) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), (10, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def by_kind(report: CheckReport) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for finding in report.findings:
        found.setdefault(finding.kind, set()).add(finding.stored_name)
    return found


def all_files(root: Path) -> Counter[tuple[str, str]]:
    """Every file under root, quarantine included, as (name, SHA-256): nothing may ever disappear."""
    return Counter(
        (path.name, hashlib.sha256(path.read_bytes()).hexdigest()) for path in root.rglob("*") if path.is_file()
    )


ORPHAN = "OrphanOrphanOrphanOrph.png"
ORPHAN_THUMB = "GhostThumbGhostThumbGh.png"
GHOST_ROW = "GhostRowGhostRowGhostR.png"


@pytest.fixture
def damaged(client, settings: Settings, database_url: str) -> dict:
    """Seven uploads (600 x 300: thumbnails at 160 and 480), then one of each kind of damage."""
    images = [upload(client, png_bytes(600, 300, (i * 30, 40, 90))).json() for i in range(7)]
    names = [image["filename"] for image in images]
    root = settings.images_dir
    stop(client)
    (root / names[0]).unlink()  # a row whose file is gone
    old_file(root / ORPHAN, png_bytes(50, 50))  # a file no row names
    old_file(root / "thumbs" / "160" / f"{ORPHAN_THUMB}.webp", b"RIFF....WEBP")  # a thumbnail of no row
    grown = root / names[1]  # a file that grew: size and SHA-256 disagree
    grown.write_bytes(grown.read_bytes() + b"trailing")
    flipped = root / names[2]  # one byte changed: only the SHA-256 disagrees
    content = bytearray(flipped.read_bytes())
    content[len(content) // 2] ^= 0xFF
    flipped.write_bytes(bytes(content))
    (root / names[3]).write_bytes(jpeg_bytes())  # replaced by a JPEG: format, size and hash disagree
    for size in (160, 480):  # thumbnails gone
        (root / "thumbs" / str(size) / f"{names[4]}.webp").unlink()
    (root / "thumbs" / "480" / f"{names[5]}.webp").unlink()  # one of two gone
    ghost_id = run_sql(
        database_url,
        "INSERT INTO images (stored_name, original_name, size_bytes, file_format, sha256, delete_key_hash, width,"
        " height) VALUES ($1, 'ghost.png', 100, 'PNG', 'x', '', 600, 300) RETURNING id",
        GHOST_ROW,
    )[0]["id"]
    return {"images": images, "names": names, "ghost_id": ghost_id, "before": all_files(root)}


def test_a_consistent_store_has_nothing_to_report(client, settings):
    for color in ((1, 2, 3), (4, 5, 6)):
        upload(client, png_bytes(600, 300, color))
    upload(client, png_bytes(40, 30))  # smaller than every thumbnail size: none are due
    stop(client)
    report = check(settings)
    assert report.consistent and report.problems == 0 and report.exit_code == 0
    assert (report.rows, report.files, report.thumbnails) == (3, 3, 4)
    assert report.bytes_hashed == sum(p.stat().st_size for p in settings.images_dir.iterdir() if p.is_file())
    assert report.summary().endswith(": consistent.")


def test_the_check_names_every_problem(damaged, settings, app_log):
    names = damaged["names"]
    report = check(settings)
    found = by_kind(report)
    assert found["missing_file"] == {names[0], GHOST_ROW}
    assert found["orphan_file"] == {ORPHAN}
    assert found["orphan_thumbnail"] == {ORPHAN_THUMB}
    assert found["mismatch"] == {names[1], names[2], names[3]}
    assert found["missing_thumbnails"] == {names[4], names[5]}
    assert set(found) == {"missing_file", "orphan_file", "orphan_thumbnail", "mismatch", "missing_thumbnails"}
    disagree = {f.stored_name: set(f.disagrees) for f in report.findings if f.kind == "mismatch"}
    assert disagree == {
        names[1]: {"size", "sha256"},
        names[2]: {"sha256"},
        names[3]: {"size", "format", "sha256"},
    }
    assert next(f for f in report.findings if f.stored_name == names[3]).disagrees["format"] == ("PNG", "JPEG")
    sizes = {f.stored_name: f.sizes for f in report.findings if f.kind == "missing_thumbnails"}
    assert sizes == {names[4]: (160, 480), names[5]: (480,)}
    assert report.problems == 9 and not report.consistent and report.exit_code == 1
    # A check changes nothing, and says what it found in app.log.
    assert all_files(settings.images_dir) == damaged["before"]
    assert not (settings.images_dir / ".quarantine").exists()
    lines = [line for line in app_log() if "] Check: " in line]
    assert any(f"row without its file: #{damaged['ghost_id']} {GHOST_ROW}" in line for line in lines)
    assert any(f"file without a row: {ORPHAN}" in line for line in lines)
    assert "9 problems" in lines[-1]
    # The operator page and the statistics read the last report.
    assert load_last_report(settings).as_json() == report.as_json()


def test_repair_quarantines_remakes_and_marks(damaged, settings, database_url, app_log):
    names = damaged["names"]
    report = check(settings, repair="mark")
    root = settings.images_dir
    actions = {(f.kind, f.stored_name): f.action for f in report.findings}
    assert actions[("orphan_file", ORPHAN)] == "quarantined"
    assert actions[("orphan_thumbnail", ORPHAN_THUMB)] == "quarantined"
    assert actions[("missing_file", names[0])] == actions[("missing_file", GHOST_ROW)] == "marked"
    assert actions[("missing_thumbnails", names[4])] == actions[("missing_thumbnails", names[5])] == "regenerated"
    assert {actions[("mismatch", name)] for name in names[1:4]} == {"left"}
    # Orphans are moved into one quarantine folder, layout kept, never deleted.
    quarantine = root / report.quarantine
    assert quarantine.parent == root / ".quarantine"
    assert (quarantine / ORPHAN).read_bytes() == png_bytes(50, 50)
    assert (quarantine / "thumbs" / "160" / f"{ORPHAN_THUMB}.webp").is_file()
    assert not (root / ORPHAN).exists()
    # Thumbnails are back, real WebP images of the right size.
    for size in (160, 480):
        with PILImage.open(root / "thumbs" / str(size) / f"{names[4]}.webp") as thumbnail:
            assert thumbnail.format == "WEBP" and max(thumbnail.size) == size
    assert (root / "thumbs" / "480" / f"{names[5]}.webp").is_file()
    # Rows whose file is gone are kept, marked; the files that disagree are untouched.
    marked = run_sql(database_url, "SELECT stored_name FROM images WHERE file_missing_since IS NOT NULL")
    assert {row["stored_name"] for row in marked} == {names[0], GHOST_ROW}
    assert damaged["before"] - all_files(root) == Counter()  # nothing deleted, nothing changed
    # The mismatches are the only thing a repair leaves: still exit 1.
    assert report.fixed == 6 and report.unfixed == 3 and report.exit_code == 1
    lines = [line for line in app_log() if "] Check: " in line]
    assert any(f"{ORPHAN} -> moved to quarantine {report.quarantine}/{ORPHAN}" in line for line in lines)
    assert any(
        f"row without its file: #{damaged['ghost_id']} {GHOST_ROW} -> row marked missing" in line for line in lines
    )
    assert any(f"{names[4]} (160, 480) -> thumbnails made" in line for line in lines)
    assert any(f"{names[1]}" in line and "left untouched" in line for line in lines)
    # A second check knows the marked rows and finds only what must be fixed by hand.
    again = check(settings)
    assert set(by_kind(again)) == {"mismatch", "marked_missing"}
    assert again.problems == 3 and again.counts["marked_missing"] == 2


def test_repair_can_remove_rows_whose_file_is_gone(damaged, settings, database_url):
    names = damaged["names"]
    for name in (names[1], names[2], names[3]):  # leave only problems a repair can fix
        (settings.images_dir / name).unlink()
    report = check(settings, repair="remove")
    assert report.consistent and report.exit_code == 0 and report.problems == report.fixed == 9
    left = {row["stored_name"] for row in run_sql(database_url, "SELECT stored_name FROM images")}
    assert left == set(names[4:])
    # The removed rows' thumbnails went to the quarantine with them.
    quarantine = settings.images_dir / report.quarantine
    assert (quarantine / "thumbs" / "160" / f"{names[0]}.webp").is_file()
    assert not (settings.images_dir / "thumbs" / "160" / f"{names[0]}.webp").exists()
    assert check(settings).consistent


def test_a_marked_row_whose_file_comes_back_is_unmarked(client, settings, database_url):
    name = upload(client, png_bytes(600, 300)).json()["filename"]
    upload(client, png_bytes(600, 300, (1, 1, 1)))
    stop(client)
    path = settings.images_dir / name
    saved = path.read_bytes()
    path.unlink()
    assert check(settings, repair="mark").consistent
    path.write_bytes(saved)  # restored from a backup
    report = check(settings)
    assert by_kind(report) == {"file_back": {name}} and report.exit_code == 1
    assert check(settings, repair="mark").consistent
    assert run_sql(database_url, "SELECT count(*) FROM images WHERE file_missing_since IS NOT NULL")[0][0] == 0
    assert check(settings).problems == 0


def test_repair_leaves_the_rows_alone_when_the_images_folder_looks_unmounted(client, settings, database_url):
    for color in ((1, 2, 3), (4, 5, 6)):
        upload(client, png_bytes(600, 300, color))
    stop(client)
    empty = replace(settings, images_dir=settings.images_dir.parent / "not-mounted")
    empty.images_dir.mkdir()
    report = check(empty, repair="remove")
    assert report.counts == {"missing_file": 2} and report.fixed == 0 and report.exit_code == 1
    assert {f.action for f in report.findings} == {"failed"}
    assert "is it mounted?" in report.findings[0].error
    assert run_sql(database_url, "SELECT count(*) FROM images WHERE file_missing_since IS NULL")[0][0] == 2


def test_a_brand_new_file_is_left_for_the_next_check(client, settings):
    upload(client, png_bytes(600, 300))
    stop(client)
    (settings.images_dir / ORPHAN).write_bytes(png_bytes())  # may be an upload about to commit its row
    report = check(settings, repair="mark")
    assert report.problems == 0 and report.skipped_recent == 1
    assert (settings.images_dir / ORPHAN).exists()
    assert f"younger than {RECENT_SECONDS} s" in report.details()


def test_one_check_at_a_time(client, settings, app_log):
    upload(client, png_bytes(600, 300))
    stop(client)

    async def two_at_once() -> list[CheckReport]:
        async with connected(settings.database_url, max_connections=4):
            store = ImageStore(settings.images_dir)
            return await asyncio.gather(*(ConsistencyCheck(settings, store).run(by=who) for who in ("one", "two")))

    assert all(report.consistent for report in asyncio.run(two_at_once()))
    lines = [line.split("] Check: ")[1] for line in app_log() if "] Check: " in line]
    assert [line.startswith("check started") for line in lines] == [True, False, True, False]


# -- The command line ------------------------------------------------------------------------------


def just_check(settings: Settings, *arguments: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "IMAGES_DIR": str(settings.images_dir),
        "LOG_DIR": str(settings.log_dir),
        "PYTHONPATH": f"{PROJECT_ROOT / 'src'}{os.pathsep}{PROJECT_ROOT}",
        "WORKER_PROCESSES": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "imagehost", "check", *arguments],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_line_exit_codes(client, settings, database_url):
    names = [upload(client, png_bytes(600, 300, (i, i, i))).json()["filename"] for i in range(2)]
    stop(client)
    clean = just_check(settings)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "2 images, 2 files and 4 thumbnails checked" in clean.stdout and "consistent" in clean.stdout
    (settings.images_dir / "thumbs" / "160" / f"{names[0]}.webp").unlink()
    old_file(settings.images_dir / ORPHAN, png_bytes())
    (settings.images_dir / names[1]).unlink()
    broken = just_check(settings)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"missing thumbnails: #1 {names[0]} (160)" in broken.stdout
    assert f"file without a row: {ORPHAN}" in broken.stdout
    assert f"row without its file: #2 {names[1]}" in broken.stdout
    assert "[" not in broken.stdout  # the log lines go to app.log, the report to stdout
    assert just_check(settings, "--missing-rows=remove").returncode == 2  # needs --repair
    repaired = just_check(settings, "--repair", "--missing-rows=remove")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "-> thumbnails made" in repaired.stdout and "-> row removed" in repaired.stdout
    assert "3 problems" in repaired.stdout and "3 fixed, 0 left" in repaired.stdout
    assert run_sql(database_url, "SELECT count(*) FROM images")[0][0] == 1
    assert just_check(settings).returncode == 0


# -- POST /api/sync and the operator page -------------------------------------------------------------


@pytest.fixture
def signed_in(make_oidc_client, sign_in):  # noqa: F811 (fixtures imported above)
    """The app with sign-in; `as_role(name)` signs the client in with that role."""
    client = make_oidc_client(api_tokens=("service-token",))

    def as_role(role: str | None) -> None:
        client.cookies.clear()
        if role:
            assert sign_in(client, role, roles=[f"app{role}"]).status_code == 303

    return client, as_role


def test_sync_is_for_admins_only(signed_in, settings):
    client, as_role = signed_in
    as_role("user")
    assert upload(client, png_bytes(600, 300), headers=JSON).status_code == 201
    user_token = client.post("/profile/tokens", data={"name": "script"}, headers=JSON).json()["token"]
    for role, status in ((None, 401), ("viewer", 403), ("user", 403)):
        as_role(role)
        assert client.post("/api/sync", headers=JSON).status_code == status, role
    as_role(None)
    for token, status in (("service-token", 403), (user_token, 403), ("ih_not_a_token", 401)):
        response = client.post("/api/sync", headers={**JSON, "Authorization": f"Bearer {token}"})
        assert response.status_code == status, token
    as_role("admin")
    admin_token = client.post("/profile/tokens", data={"name": "ops"}, headers=JSON).json()["token"]
    client.cookies.clear()
    response = client.post("/api/sync", headers={**JSON, "Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success" and body["consistent"] is True and body["checked"]["rows"] == 1
    assert body["by"] == "admin" and body["repair"] is None


def test_sync_repairs_when_asked(signed_in, settings, database_url):
    client, as_role = signed_in
    as_role("admin")
    name = upload(client, png_bytes(600, 300), headers=JSON).json()["filename"]
    (settings.images_dir / name).unlink()
    old_file(settings.images_dir / ORPHAN, png_bytes())
    report = client.post("/api/sync", headers=JSON).json()
    assert (
        report["consistent"] is False
        and report["problems"] == 2
        and report["counts"]
        == {
            "missing_file": 1,
            "orphan_file": 1,
        }
    )
    assert {(f["kind"], f["stored_name"]) for f in report["findings"]} == {
        ("missing_file", name),
        ("orphan_file", ORPHAN),
    }
    for bad in ({"repair": "yes"}, {"repair": True, "missing_rows": "delete"}, [1]):
        assert client.post("/api/sync", json=bad, headers=JSON).status_code == 422
    assert client.post("/api/sync", content=b"{not json", headers=JSON).status_code == 422
    repaired = client.post("/api/sync", json={"repair": True, "missing_rows": "remove"}, headers=JSON).json()
    assert repaired["consistent"] is True and repaired["fixed"] == 2 and repaired["repair"] == "remove"
    assert repaired["quarantine"].startswith(".quarantine/")
    assert (settings.images_dir / repaired["quarantine"] / ORPHAN).is_file()
    assert run_sql(database_url, "SELECT count(*) FROM images")[0][0] == 0
    assert client.post("/api/sync", json={"repair": False}, headers=JSON).json()["problems"] == 0


def test_the_operator_page(signed_in, settings):
    client, as_role = signed_in
    as_role("admin")
    name = upload(client, png_bytes(600, 300), headers=JSON).json()["filename"]
    upload(client, png_bytes(600, 300, (1, 1, 1)), headers=JSON)
    page = client.get("/ops/check", headers=HTML)
    assert page.status_code == 200 and '<section id="check-report"' in page.text
    assert "No check has run yet." in page.text and 'hx-post="/ops/check"' in page.text
    (settings.images_dir / name).unlink()
    fragment = client.post("/ops/check", headers=HTMX)
    assert fragment.status_code == 200
    assert fragment.text.strip().startswith('<section id="check-report"') and "<html" not in fragment.text
    assert "Row without its file" in fragment.text and name in fragment.text and 'id="check-verdict"' in fragment.text
    assert fragment.headers["vary"] == "HX-Request, Accept"
    # The last report is what the page shows next time, in either language.
    again = client.get("/ops/check", headers={**HTML, "Accept-Language": "ru"})
    assert name in again.text and "Строка без файла" in again.text
    repaired = client.post("/ops/check", data={"repair": "1", "missing_rows": "mark"}, headers=HTMX)
    assert "row marked missing" in repaired.text and "Repaired: every problem found was fixed." in repaired.text
    as_role("user")
    assert client.get("/ops/check", headers=HTML).status_code == 403
    assert client.post("/ops/check", headers=HTMX).status_code == 403
    as_role(None)
    assert client.get("/ops/check", headers=HTML, follow_redirects=False).status_code == 303  # to sign in
    assert json.loads(client.get("/ops/check", headers=JSON).text)["status"] == "error"
