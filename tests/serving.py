"""Run an ASGI app on a loopback port in a thread, for tests that speak real HTTP."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running(app, wait_ready: bool = True, timeout: float = 120.0):
    """Yield the base URL of `app` served on 127.0.0.1; stop it afterwards."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    if wait_ready:
        while httpx.get(f"{url}/ping").status_code != 200:
            assert time.monotonic() < deadline, httpx.get(f"{url}/ping").text
            time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
