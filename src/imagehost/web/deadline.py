"""An overall deadline for receiving one request body, however slowly it trickles in.

nginx's client_body_timeout only bounds the pause between two reads, so a client sending a byte
every few seconds could hold an upload open for days. Here the whole body must have arrived within
UPLOAD_READ_TIMEOUT_SECONDS of the request's start; otherwise the request ends with 408
(UploadTooSlow) and uvicorn closes the connection. nginx streams upload bodies to the app
(`proxy_request_buffering off` in nginx.conf) so that this deadline holds behind it too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from imagehost.errors import UploadTooSlow


def body_deadline(seconds: float) -> Callable[[ASGIApp], ASGIApp]:
    def middleware(app: ASGIApp) -> ASGIApp:
        async def bounded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            loop = asyncio.get_running_loop()
            deadline = loop.time() + seconds
            body_complete = False

            async def receive_in_time() -> Message:
                nonlocal body_complete
                if body_complete:  # after the body: waiting for a disconnect is not reading an upload
                    return await receive()
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    client = scope.get("client")
                    raise UploadTooSlow(
                        seconds=f"{seconds:g}",
                        method=scope["method"],
                        path=scope["path"],
                        client=client[0] if client else "?",
                    ) from None
                if message["type"] != "http.request" or not message.get("more_body", False):
                    body_complete = True
                return message

            await app(scope, receive_in_time, send)

        return bounded

    return middleware
