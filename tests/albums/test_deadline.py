"""ZIP_READ_TIMEOUT_SECONDS: /api/upload's body has its own, longer deadline; every other route
keeps UPLOAD_READ_TIMEOUT_SECONDS."""

from __future__ import annotations

import asyncio

import pytest

from imagehost.app import body_deadlines
from imagehost.errors import UploadTooSlow


async def read_slow_body(path: str) -> bytes:
    async def app(scope, receive, send):
        message = await receive()
        scope["received"] = message["body"]

    async def receive():
        await asyncio.sleep(0.3)  # a body that trickles in
        return {"type": "http.request", "body": b"zip bytes", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": path, "client": ("127.0.0.1", 1)}
    await body_deadlines(0.1, {"/api/upload": 2.0})(app)(scope, receive, None)
    return scope["received"]


def test_the_zip_route_waits_longer_for_its_body():
    assert asyncio.run(read_slow_body("/api/upload")) == b"zip bytes"


def test_other_routes_keep_the_usual_deadline():
    with pytest.raises(UploadTooSlow):
        asyncio.run(read_slow_body("/upload"))
