"""The JSON API described by /schema/openapi.json, fuzzed by schemathesis against the live app
(uvicorn, PostgreSQL, isolated workers): no server error, no answer that contradicts the schema."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tests.live import live_app

OPERATOR_TOKEN = "schemathesis-operator-token"
SERVICE_TOKEN = "schemathesis-service-token"
# Bounded, so the run costs about a minute: examples per operation, and a seed to make it repeatable
# (SCHEMATHESIS_MAX_EXAMPLES and SCHEMATHESIS_SEED change them).
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "50")
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261201")


def test_the_description_covers_every_json_route(database_url, tmp_path):
    with live_app(database_url, tmp_path, ADMIN_TOKEN=OPERATOR_TOKEN, WORKER_PROCESSES="1") as app:
        schema = httpx.get(f"{app.url}/schema/openapi.json").json()
        page = httpx.get(f"{app.url}/schema")
    paths = schema["paths"]
    for path, method, status in [
        ("/upload", "post", "201"),
        ("/images-list", "get", "200"),
        ("/images", "get", "200"),
        ("/i/{stored_name}", "get", "200"),
        ("/delete/{image_id}", "delete", "200"),
        ("/api/images", "post", "201"),
        ("/api/sync", "post", "200"),
        ("/ops/stats", "get", "200"),
    ]:
        described = paths[path][method]["responses"]
        assert status in described, (path, method)
        assert "application/json" in described[status]["content"], (path, method)
        assert any(code.startswith("4") for code in described), (path, method)  # errors are described too
    assert "multipart/form-data" in paths["/upload"]["post"]["requestBody"]["content"]
    # The page is built from vendored files only: no CDN, no inline script.
    assert page.status_code == 200
    assert "/static/swagger-ui-5.35.0/swagger-ui-bundle.js" in page.text
    assert "https://" not in page.text and "<script>" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_schemathesis_finds_no_server_error_and_no_answer_against_the_schema(database_url, tmp_path):
    command = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    with live_app(
        database_url, tmp_path, ADMIN_TOKEN=OPERATOR_TOKEN, API_TOKENS=SERVICE_TOKEN, WORKER_PROCESSES="1"
    ) as app:
        result = subprocess.run(
            [
                command,
                "run",
                f"{app.url}/schema/openapi.json",
                "--checks",
                "not_a_server_error,response_schema_conformance,content_type_conformance",
                "--header",
                f"Authorization: Bearer {OPERATOR_TOKEN}",
                "--max-examples",
                MAX_EXAMPLES,
                "--seed",
                SEED,
                "--workers",
                "1",
                "--phases",
                "examples,coverage,fuzzing",
                "--request-timeout",
                "30",
                "--no-color",
                "--suppress-health-check",
                "all",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp_path,  # its example database lives there, not in the work tree
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )
        log = (app.log_dir / "app.log").read_text() if (app.log_dir / "app.log").exists() else ""
    report = result.stdout[-12000:] + result.stderr[-4000:]
    assert result.returncode == 0, report
    assert "unexpected error" not in log, log[-4000:]
