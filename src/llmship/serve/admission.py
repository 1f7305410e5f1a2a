"""Admission at the door: how many requests the server holds, how long a body may take
to arrive, and what happens to work whose client went away.

Three bounds keep memory flat under any load: at most `limit` requests in flight
(each holding at most one body of the endpoint's payload limit), a deadline on reading
each body (a client trickling bytes cannot hold its place forever), and the engine's
bounded waiting queue behind them. A request refused here costs no body read and no
model time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import Request
from starlette.requests import ClientDisconnect

from llmship.serve.responses import refusal

log = logging.getLogger("llmship.serve")
T = TypeVar("T")
# What the server logs for a request whose client left before the answer (nginx's code);
# the client never sees it.
CLIENT_GONE = 499


class BodyRefused(Exception):
    """The body was too large (413), too slow (408) or never finished (client gone)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ClientGone(Exception):
    """The client disconnected while its request was being answered."""


class Gate:
    """Counts the requests in flight; the middleware refuses past `limit`."""

    def __init__(self, limit: int, retry_after_s: int):
        self.limit, self.retry_after_s = limit, retry_after_s
        self.active = 0
        self.refused = 0


class InFlightLimit:
    """ASGI middleware: at most gate.limit HTTP requests at once, 503 with Retry-After past
    it (in the route's error shape), before the body is read. GET /ping is never counted
    nor refused: the health check must answer even at capacity.

    When the shutdown grace period ends, the server cancels what still runs; a request
    cut off that way gets a 503 (if its answer had not begun) instead of a traceback
    in the log and a dropped connection."""

    def __init__(self, app, gate: Gate):
        self.app, self.gate = app, gate

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] == "/ping":
            await self.app(scope, receive, send)
            return
        gate = self.gate
        if gate.active >= gate.limit:
            gate.refused += 1
            response = refusal(
                scope["path"],
                503,
                f"the server is handling {gate.active} requests, its limit; retry shortly",
                gate.retry_after_s,
            )
            await response(scope, receive, send)
            return
        gate.active += 1
        started = False

        async def send_tracked(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except asyncio.CancelledError:
            log.warning("%s cut off: the shutdown grace period ended", scope["path"])
            if not started:
                message = "the server is shutting down; retry on another instance"
                await refusal(scope["path"], 503, message, gate.retry_after_s)(scope, receive, send)
        finally:
            gate.active -= 1


async def read_body(request: Request, max_bytes: int, timeout_s: float) -> bytes:
    """The whole body, refusing one over `max_bytes` (413, from Content-Length when it is
    declared) or not all there after `timeout_s` (408)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise BodyRefused(413, f"the payload is over {max_bytes} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > max_bytes:
                    raise BodyRefused(413, f"the payload is over {max_bytes} bytes")
    except TimeoutError:
        raise BodyRefused(408, f"the request body did not arrive within {timeout_s:g} s") from None
    except ClientDisconnect:
        raise BodyRefused(CLIENT_GONE, "the client left before sending its whole body") from None
    return bytes(body)


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it when the client disconnects first: a caller that left
    must not keep a KV-cache slot until its answer is complete. Call after the body is
    read (from then on the only message the client can send is the disconnect)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        watcher.cancel()
        raise
    watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()  # its own cleanup (handle.cancel()) frees the slot
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise ClientGone


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
