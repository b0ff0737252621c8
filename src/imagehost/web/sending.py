"""A stored file as an HTTP answer, wherever it lives: a file on disk is sent as it is (sendfile,
with its size and date), an object in a bucket is streamed as it arrives, with its size."""

from __future__ import annotations

from collections.abc import Mapping

from litestar import Response
from litestar.response import File, Stream

from imagehost.storage.files import OnDisk, Served


def send(served: Served, media_type: str, headers: Mapping[str, str], *, inline: bool) -> Response:
    if isinstance(served, OnDisk):
        return File(  # type: ignore[return-value]
            served.path,
            media_type=media_type,
            content_disposition_type="inline" if inline else "attachment",
            headers=dict(headers),
        )
    return Stream(  # type: ignore[return-value]
        served.chunks, media_type=media_type, headers={**headers, "Content-Length": str(served.size)}
    )
