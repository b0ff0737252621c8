"""Many rows at once, made inside PostgreSQL (generate_series): an album of `articles` articles with
`per_article` images each, for the memory measurements. Only rows: no files are written.

`triggers=False` (the bench's 100,000 rows) inserts with the row triggers off: each would update the
same totals row once per image, which in one statement grows slower with every row. The totals and
counts are then stale until the tables are truncated (their truncate triggers reset them)."""

from __future__ import annotations

import asyncio
import hashlib

import asyncpg


def bulk_album(database_url: str, name: str, articles: int, per_article: int, *, triggers: bool = True) -> int:
    tag = hashlib.sha256(name.encode()).hexdigest()[:12]  # fixed length: the number starts at 17
    statements: list[tuple[str, tuple[object, ...]]] = [
        ("INSERT INTO albums (name, created_at) VALUES ($1, now())", (name,)),
        (
            "INSERT INTO articles (album, code, created_at) SELECT a.id, 'SKU' || n, now()"
            " FROM albums a, generate_series(1, $2::int) n WHERE a.name = $1",
            (name, articles),
        ),
        (
            "INSERT INTO images (stored_name, original_name, size_bytes, file_format, sha256, uploaded_at,"
            " delete_key_hash, width, height)"
            " SELECT 'bulk' || $2::text || lpad(n::text, 18, '0') || '.png', 'photo_' || n || '.png', 1000, 'PNG',"
            " repeat('0', 64), now(), repeat('0', 64), 40, 30 FROM generate_series(1, $1::int) n",
            (articles * per_article, tag),
        ),
        # Fresh statistics, or the join below is planned for empty tables (a nested loop: minutes at 100,000).
        ("ANALYZE images", ()),
        ("ANALYZE articles", ()),
        (
            "INSERT INTO album_images (image, album, article, position, source_sha256)"
            " SELECT i.id, al.id, ar.id, (i.n - 1) % $2, repeat('0', 64)"
            " FROM (SELECT id, substring(stored_name from 17 for 18)::int AS n FROM images"
            " WHERE stored_name LIKE $3) i"
            " JOIN albums al ON al.name = $1"
            " JOIN articles ar ON ar.album = al.id AND ar.code = 'SKU' || ((i.n - 1) / $2 + 1)",
            (name, per_article, f"bulk{tag}%"),
        ),
    ]

    async def insert() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            if not triggers:
                await connection.execute("SET session_replication_role = replica")
            for statement, arguments in statements:
                await connection.execute(statement, *arguments)
        finally:
            await connection.close()

    asyncio.run(insert())
    return articles * per_article
