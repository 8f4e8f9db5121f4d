"""A cap on a request's body, enforced while it streams in (an ASGI middleware).

The form parser spools every uploaded file to a temporary file before a route sees it, so a check in
the route comes after the whole body is on disk. A body declared too large (Content-Length) is refused
before a byte is read; a body without a declared size (chunked transfer) is counted as it arrives, and
the request is answered with 413 as soon as the count passes the cap: at most the cap is ever buffered.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLargeError(Exception):
    """Raised into the app's body reading once the body passes the cap (never an `RnsError`, so no
    route-level handler turns it into something else than the 413 the middleware sends)."""


class BodyLimitMiddleware:
    """Answer 413 with `{"error": message(size)}` for any HTTP request whose body exceeds `max_bytes`."""

    def __init__(self, app: App, max_bytes: int, message: Callable[[int], str]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, int(declared))
            return
        received = 0
        over = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    raise BodyTooLargeError(received)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:  # whatever the app answers after the cut (its own 400 or 500) is replaced
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLargeError:
            pass
        except Exception:
            if not over:
                raise
        if over and not started:
            await self._refuse(send, received)

    async def _refuse(self, send: Send, size: int) -> None:
        body = json.dumps({"error": self.message(size)}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})
