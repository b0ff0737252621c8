"""Many rows at once, made inside PostgreSQL (generate_series): an album of `articles` articles with
`per_article` images each, for the memory measurements. Only rows: no files are written."""

from __future__ import annotations

import hashlib

from tests.conftest import run_sql


def bulk_album(database_url: str, name: str, articles: int, per_article: int) -> int:
    tag = hashlib.sha256(name.encode()).hexdigest()[:12]  # fixed length: the number starts at 17
    run_sql(database_url, "INSERT INTO albums (name, created_at) VALUES ($1, now())", name)
    run_sql(
        database_url,
        "INSERT INTO articles (album, code, created_at) SELECT a.id, 'SKU' || n, now()"
        " FROM albums a, generate_series(1, $2::int) n WHERE a.name = $1",
        name,
        articles,
    )
    run_sql(
        database_url,
        "INSERT INTO images (stored_name, original_name, size_bytes, file_format, sha256, uploaded_at,"
        " delete_key_hash, width, height)"
        " SELECT 'bulk' || $2::text || lpad(n::text, 18, '0') || '.png', 'photo_' || n || '.png', 1000, 'PNG',"
        " repeat('0', 64), now(), repeat('0', 64), 40, 30 FROM generate_series(1, $1::int) n",
        articles * per_article,
        tag,
    )
    run_sql(
        database_url,
        "INSERT INTO album_images (image, album, article, position, source_sha256)"
        " SELECT i.id, al.id, ar.id, (i.n - 1) % $2, repeat('0', 64)"
        " FROM (SELECT id, substring(stored_name from 17 for 18)::int AS n FROM images WHERE stored_name LIKE $3) i"
        " JOIN albums al ON al.name = $1"
        " JOIN articles ar ON ar.album = al.id AND ar.code = 'SKU' || ((i.n - 1) / $2 + 1)",
        name,
        per_article,
        f"bulk{tag}%",
    )
    return articles * per_article
