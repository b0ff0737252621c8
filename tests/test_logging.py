"""app.log: one `[YYYY-MM-DD HH:MM:SS] Action: message` line per event, unforgeable by user text."""

from __future__ import annotations

import re
from pathlib import Path

from imagehost.logging import ACTIONS, one_line
from tests.conftest import another_browser, png_bytes, upload

LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] [A-Z][A-Za-z]+: .+$")


def test_every_action_is_one_well_formed_line(client, app_log):
    body = upload(client, png_bytes(), "cat.png").json()
    upload(client, b"just text", "user_file.txt")
    with another_browser(client) as stranger:
        stranger.delete(f"/delete/{body['id']}")
    client.delete(f"/delete/{body['id']}")
    lines = app_log()
    assert all(LINE.match(line) for line in lines), lines
    assert any(
        line.endswith(f"Success: image {body['filename']} uploaded (cat.png, {body['size']} bytes).") for line in lines
    )
    assert any(line.endswith("Error: unsupported file format (user_file.txt).") for line in lines)
    assert any(f"Error: delete of image {body['filename']} by anonymous refused" in line for line in lines)
    assert any(line.endswith(f"Success: image {body['filename']} deleted by its uploader (cat.png).") for line in lines)
    assert any("Database: connected to PostgreSQL." in line for line in lines)


def test_a_hostile_name_cannot_forge_a_line(client, app_log):
    forged = "x.txt\r\n[2026-01-01 00:00:00] Success: image evil.png uploaded (a, 1 bytes).\u2028"
    upload(client, b"text", forged)
    upload(client, png_bytes(), forged.replace(".txt", ".png"))
    lines = app_log()
    assert all(LINE.match(line) for line in lines), lines
    assert not any(line.startswith("[2026-01-01 00:00:00]") for line in lines)
    assert sum("evil.png" in line for line in lines) == 2


def test_the_code_writes_only_the_actions_the_log_viewer_offers():
    # Every `action="..."` in the code: what the action log is given (log.info(..., action="Backup")),
    # but for AlbumForbidden's, which names what was refused, and argparse's.
    source = Path(__file__).resolve().parents[1] / "src" / "imagehost"
    written = set()
    for path in source.rglob("*.py"):
        written |= set(re.findall(r'\baction="(\w+)"', path.read_text()))
    written -= {"replace", "store_true"}
    assert {"Success", "Backup", "Login", "Workers"} <= written  # the pattern finds them
    assert written <= set(ACTIONS), written - set(ACTIONS)


def test_one_line_escapes_control_characters():
    assert one_line("a\nb\rc\td\u2028e\\") == "a\\nb\\rc\\td\\u2028e\\\\"
    assert one_line("кот.png") == "кот.png"


def test_dropped_database_connections_cost_at_most_a_503_and_are_replaced(client, settings, app_log):
    from tests.conftest import run_sql

    upload(client, png_bytes())
    run_sql(
        settings.database_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    first = client.get("/images-list")
    if first.status_code != 200:  # the pool may notice the dead connection only when it uses it
        assert first.status_code == 503
        assert "database" in first.json()["error"].lower()
        assert any("] Database: connection lost:" in line for line in app_log())
    assert client.get("/images-list").json()["pagination"]["total_items"] == 1
