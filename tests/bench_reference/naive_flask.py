"""A naive image host, the one issue 18 measures ImageHost against: Flask under gunicorn (2 sync workers).

POST /upload (field `file`): the extension checked, the file saved into BENCH_UPLOAD_DIR, one
INSERT into a table of its own (naive_uploads) in DATABASE_URL, 201 JSON. No decoding, no
stripping, no thumbnails, no fsync. GET /health answers 200.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
from flask import Flask, jsonify, request

UPLOAD_DIR = Path(os.environ["BENCH_UPLOAD_DIR"])
DATABASE_URL = os.environ["DATABASE_URL"]
EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
TABLE = """
CREATE TABLE IF NOT EXISTS naive_uploads (
    id bigserial PRIMARY KEY,
    stored_name text NOT NULL,
    original_name text NOT NULL,
    size_bytes bigint NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now()
)
"""

# Each worker imports this module; the lock keeps two CREATE TABLE IF NOT EXISTS from racing.
with psycopg.connect(DATABASE_URL) as setup:
    setup.execute("SELECT pg_advisory_xact_lock(18)")
    setup.execute(TABLE)

app = Flask(__name__)
_connection: psycopg.Connection | None = None


def connection() -> psycopg.Connection:
    """One connection per worker process (a sync worker serves one request at a time)."""
    global _connection
    if _connection is None or _connection.closed:
        _connection = psycopg.connect(DATABASE_URL, autocommit=True)
    return _connection


@app.get("/health")
def health():
    return jsonify(status="ok")


@app.post("/upload")
def upload():
    file = request.files.get("file")
    if file is None or not file.filename:
        return jsonify(error="no file"), 400
    extension = Path(file.filename).suffix.lower()
    if extension not in EXTENSIONS:
        return jsonify(error="unsupported extension"), 415
    stored_name = uuid.uuid4().hex + extension
    path = UPLOAD_DIR / stored_name
    file.save(path)
    size = path.stat().st_size
    connection().execute(
        "INSERT INTO naive_uploads (stored_name, original_name, size_bytes) VALUES (%s, %s, %s)",
        (stored_name, file.filename, size),
    )
    return jsonify(stored_name=stored_name, size_bytes=size), 201
