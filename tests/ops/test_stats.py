"""The operator's statistics page: admins only, numbers that add up, a chart drawn server-side."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

from imagehost.logging import configure_logging
from imagehost.ops import state
from imagehost.ops.backup import make_backup
from imagehost.ops.consistency import run_check
from tests.conftest import ADMIN_TOKEN, CORPUS, HTML, png_bytes, run_sql, upload

OPERATOR = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_statistics_add_up(client, settings, app_log):
    uploads = [upload(client, png_bytes(40 + i, 30)).json() for i in range(3)]
    uploads.append(upload(client, (CORPUS / "accepted" / "hopper.jpg").read_bytes(), "h.jpg").json())
    # Two older uploads, 3 and 40 days ago: one inside the 30-day chart, one outside.
    run_sql(
        settings.database_url,
        "UPDATE images SET uploaded_at = now() - interval '3 days' WHERE id = $1",
        uploads[0]["id"],
    )
    run_sql(
        settings.database_url,
        "UPDATE images SET uploaded_at = now() - interval '40 days' WHERE id = $1",
        uploads[1]["id"],
    )
    stats = client.get("/ops/stats", headers={**OPERATOR, "Accept": "application/json"}).json()
    assert stats["images"] == 4
    assert stats["total_bytes"] == sum(u["size"] for u in uploads)
    formats = {row["format"]: row for row in stats["by_format"]}
    assert formats["PNG"]["count"] == 3 and formats["JPEG"]["count"] == 1
    assert formats["JPEG"]["bytes"] == uploads[3]["size"]
    assert stats["by_uploader"] == [{"name": "", "sub": None, "count": 4, "bytes": stats["total_bytes"]}]
    assert len(stats["per_day"]) == 30 and sum(day["count"] for day in stats["per_day"]) == 3
    assert stats["per_day"][-1] == {"day": datetime.now(UTC).date().isoformat(), "count": 2}
    assert stats["disk"]["free"] > 0 and stats["database_bytes"] > 0
    assert stats["database_version"].startswith("PostgreSQL")
    assert stats["last_backup"] is None


def test_the_page_draws_its_chart_without_javascript(client, settings):
    upload(client, png_bytes())
    when = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    asyncio.run(state.record(settings.database_url, state.BACKUP, state.OK, "backup_2026-11-20_030000 made", at=when))
    page = client.get("/ops/stats", headers={**OPERATOR, **HTML})
    assert page.status_code == 200
    assert "<svg" in page.text and page.text.count("<rect") == 30
    assert "2026-11-20 03:00:00 UTC: backup_2026-11-20_030000 made" in page.text
    assert "<script" not in page.text.split("<main>")[1].split("</main>")[0]


def test_only_admins_see_statistics(client):
    assert client.get("/ops/stats", headers={"Accept": "application/json"}).status_code == 401
    assert client.get("/ops/stats", headers={**HTML}).status_code == 401
    assert client.get("/ops/stats", headers={"Authorization": "Bearer wrong"}).status_code == 401


FORGED_LINE = "x] Backup: backup_2099-12-31_235959.tar.gz made: 999 images, 0 API tokens .png"


def test_an_upload_named_like_a_log_line_cannot_pose_as_the_last_backup(make_client, settings, tmp_path):
    """The last backup and check come from the operations themselves (operations_state), not from app.log."""
    settings = replace(settings, backup_dir=tmp_path / "backups")
    client = make_client()
    assert upload(client, png_bytes(), FORGED_LINE).status_code == 201
    assert FORGED_LINE in (settings.log_dir / "app.log").read_text()  # it is in the log, as every name is
    json_headers = {**OPERATOR, "Accept": "application/json"}
    stats = client.get("/ops/stats", headers=json_headers).json()
    assert stats["last_backup"] is None and stats["last_check"] is None and stats["operations"] == {}

    configure_logging(settings.log_dir)
    made = asyncio.run(make_backup(settings))
    client.__exit__(None, None, None)  # the check connects on its own, as `just check` does
    asyncio.run(run_check(settings))
    client = make_client()
    assert upload(client, png_bytes(50, 40), FORGED_LINE).status_code == 201  # logged after both
    stats = client.get("/ops/stats", headers=json_headers).json()
    assert made.path.name in stats["last_backup"] and "2099" not in stats["last_backup"]
    assert stats["operations"]["backup"]["outcome"] == "ok"
    assert "consistent" in stats["last_check"] and stats["operations"]["check"]["outcome"] == "ok"
    page = client.get("/ops/stats", headers={**OPERATOR, **HTML}).text
    assert made.path.name in page and "backup_2099-12-31_235959" not in page


def test_the_images_table_emptied_by_hand_zeroes_the_totals(client, settings):
    for shade in range(2):
        upload(client, png_bytes(40, 30, (shade, 9, 9)))
    statistics = client.get("/ops/stats", headers={**OPERATOR, "Accept": "application/json"}).json()
    assert statistics["images"] == 2 and statistics["by_format"][0]["count"] == 2
    run_sql(settings.database_url, "TRUNCATE images CASCADE")
    statistics = client.get("/ops/stats", headers={**OPERATOR, "Accept": "application/json"}).json()
    assert statistics["images"] == 0 and statistics["total_bytes"] == 0
    assert statistics["by_format"] == [] and statistics["by_uploader"] == []
    assert sum(day["count"] for day in statistics["per_day"]) == 0
    assert client.get("/images-list", headers={"Accept": "application/json"}).json()["pagination"]["total_items"] == 0
