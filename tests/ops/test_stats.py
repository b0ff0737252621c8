"""The operator's statistics page: admins only, numbers that add up, a chart drawn server-side."""

from __future__ import annotations

from datetime import UTC, datetime

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
    with (settings.log_dir / "app.log").open("a") as log:
        log.write("[2026-11-20 03:00:00] Backup: backup_2026-11-20_030000 made (1 image).\n")
    page = client.get("/ops/stats", headers={**OPERATOR, **HTML})
    assert page.status_code == 200
    assert "<svg" in page.text and page.text.count("<rect") == 30
    assert "backup_2026-11-20_030000" in page.text
    assert "<script" not in page.text.split("<main>")[1].split("</main>")[0]


def test_only_admins_see_statistics(client):
    assert client.get("/ops/stats", headers={"Accept": "application/json"}).status_code == 401
    assert client.get("/ops/stats", headers={**HTML}).status_code == 401
    assert client.get("/ops/stats", headers={"Authorization": "Bearer wrong"}).status_code == 401
