"""/ops/logs: the action log for admins, newest first, filtered, paged, across rotated files."""

from __future__ import annotations

from imagehost.ops.logs.reader import LogFilter, lines_backwards, read_page
from tests.conftest import ADMIN_TOKEN, HTML, png_bytes, upload

OPERATOR = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
JSON = {"Accept": "application/json", **OPERATOR}

OLDER = [
    "[2026-10-01 08:00:00] Backup: backup_2026-10-01_080000.tar.gz made: 3 images, 0 API tokens.",
    "[2026-10-02 09:00:00] Success: image A.png uploaded (old.png, 10 bytes) by vera.",
    "[2026-10-03 10:00:00] Error: upload refused: not a supported image (bad.txt).",
]


def write_rotated(settings, newer: list[str]) -> None:
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    (settings.log_dir / "app.log.1").write_text("\n".join(OLDER) + "\n", encoding="utf-8")
    with (settings.log_dir / "app.log").open("a", encoding="utf-8") as log:
        log.write("\n".join(newer) + "\n")


def entries(client, query: str = "") -> dict:
    response = client.get(f"/ops/logs{query}", headers=JSON)
    assert response.status_code == 200, response.text
    return response.json()


def test_newest_first_across_rotated_files_with_filters(client, settings):
    write_rotated(settings, ["[2027-01-20 12:00:00] Success: album Shop deleted by vera (3 images)."])
    everything = entries(client)["entries"]
    assert everything[0]["action"] in {"Database", "Success"}  # the app's own lines come last, shown first
    messages = [entry["message"] for entry in everything]
    assert messages.index("album Shop deleted by vera (3 images).") < messages.index(OLDER[2].split(": ", 1)[1])
    assert [entry["time"] for entry in everything] == sorted((entry["time"] for entry in everything), reverse=True)
    assert [e["time"] for e in entries(client, "?action=backup")["entries"]] == ["2026-10-01 08:00:00"]
    assert [e["time"] for e in entries(client, "?who=vera")["entries"]] == [
        "2027-01-20 12:00:00",
        "2026-10-02 09:00:00",
    ]
    assert [e["time"] for e in entries(client, "?who=ver")["entries"]] == []  # a whole name, not a part of one
    assert [e["time"] for e in entries(client, "?q=BAD.TXT")["entries"]] == ["2026-10-03 10:00:00"]
    window = entries(client, "?from=2026-10-02&to=2026-10-03")["entries"]
    assert [e["time"] for e in window] == ["2026-10-03 10:00:00", "2026-10-02 09:00:00"]


def test_pages_of_fifty(client, settings):
    write_rotated(settings, [f"[2026-11-01 00:{n // 60:02d}:{n % 60:02d}] Info: line {n}." for n in range(120)])
    first = entries(client, "?q=line")
    assert first["has_next"] and len(first["entries"]) == 50 and first["entries"][0]["message"] == "line 119."
    third = entries(client, "?q=line&page=3")
    assert not third["has_next"] and [e["message"] for e in third["entries"]][-1] == "line 0."
    assert len(third["entries"]) == 20


def test_the_page_and_its_fragment(client, settings):
    upload(client, png_bytes(), "<img src=x onerror=alert(1)>.png")
    page = client.get("/ops/logs?q=onerror", headers={**HTML, **OPERATOR})
    assert page.status_code == 200 and 'id="log-entries"' in page.text and "<h1>" in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in page.text and "<img src=x" not in page.text
    fragment = client.get("/ops/logs?q=onerror", headers={"HX-Request": "true", **OPERATOR})
    assert fragment.text.lstrip().startswith('<div id="log-entries">')
    assert 'href="/ops/logs"' in client.get("/ops/stats", headers={**HTML, **OPERATOR}).text


def test_admins_only_and_bad_dates(client):
    assert client.get("/ops/logs", headers={"Accept": "application/json"}).status_code == 401
    bad = client.get("/ops/logs?from=yesterday", headers=JSON)
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.json()["error"]
    assert client.get("/ops/logs?page=0", headers=JSON).status_code == 400


def test_reading_backwards_crosses_block_boundaries(tmp_path):
    path = tmp_path / "app.log"
    lines = [f"[2026-11-01 00:00:00] Info: {'x' * (n % 7)} {n}" for n in range(500)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert list(lines_backwards(path, block=64)) == list(reversed(lines))
    found = read_page(tmp_path, LogFilter(text="499"), 1)
    assert [entry.message for entry in found.entries] == ["xxxx 499".replace("xxxx", "x" * (499 % 7))]


def test_an_instance_named_by_instance_name_reads_and_writes_its_own_log(make_client, settings):
    """Two instances sharing LOG_DIR (compose's --profile s3): each logs to, and shows, its own file."""
    write_rotated(settings, ["[2026-11-02 10:00:00] Success: image B.png uploaded (other.png, 9 bytes)."])
    client = make_client(instance_name="app-2")
    assert upload(client, png_bytes(), "mine.png").status_code == 201
    own = entries(client)
    assert own["log_file"] == "app-app-2.log"
    messages = [entry["message"] for entry in own["entries"]]
    assert any("(mine.png," in message for message in messages)
    assert not any("other.png" in message for message in messages)  # the other instance's app.log
    assert "mine.png" in (settings.log_dir / "app-app-2.log").read_text(encoding="utf-8")
    assert "mine.png" not in (settings.log_dir / "app.log").read_text(encoding="utf-8")
    page = client.get("/ops/logs", headers={**HTML, **OPERATOR})
    assert "app-app-2.log" in page.text
    tail = client.get("/logs?limit=5", headers=OPERATOR)
    assert tail.status_code == 200 and "mine.png" in tail.text
