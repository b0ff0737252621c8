"""A bare ASGI upload endpoint: the fastest an upload can be answered in Python on this machine.

POST /upload (multipart/form-data, field `file`) streams the file's bytes into BENCH_UPLOAD_DIR
and answers 201 JSON; GET /health answers 200. No validation, no database, no fsync.
Run under uvicorn with one process and `--lifespan off` (tests/bench_reference/servers.py).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from multipart import MultipartSegment, PushMultipartParser, parse_options_header

UPLOAD_DIR = Path(os.environ["BENCH_UPLOAD_DIR"])


async def answer(send, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def store_upload(scope, receive, send) -> None:
    content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
    kind, options = parse_options_header(content_type)
    if kind != "multipart/form-data" or "boundary" not in options:
        await answer(send, 400, {"error": "multipart/form-data expected"})
        return
    stored_name, size, target = None, 0, None
    with PushMultipartParser(options["boundary"]) as parser:  # leaving it checks the stream was whole
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
            body = message.get("body", b"")
            if not body:  # an empty chunk would tell the parser the input has ended
                continue
            for event in parser.parse(body):
                if isinstance(event, MultipartSegment):
                    if event.name == "file" and event.filename and stored_name is None:
                        stored_name = uuid.uuid4().hex + Path(event.filename).suffix.lower()
                        target = (UPLOAD_DIR / stored_name).open("wb")
                elif event is None:  # the end of a part
                    if target is not None:
                        target.close()
                        target = None
                elif target is not None:
                    size += target.write(event)
    if stored_name is None:
        await answer(send, 400, {"error": "no file"})
        return
    await answer(send, 201, {"stored_name": stored_name, "size_bytes": size})


async def app(scope, receive, send) -> None:
    assert scope["type"] == "http"
    route = scope["method"], scope["path"]
    if route == ("POST", "/upload"):
        await store_upload(scope, receive, send)
    elif route == ("GET", "/health"):
        await answer(send, 200, {"status": "ok"})
    else:
        await answer(send, 404, {"error": "not found"})
