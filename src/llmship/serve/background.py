"""Serve an app on a loopback port in a background thread (the demo and tests use it)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from llmship.errors import PackageError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running(app, wait_ready: bool = True, timeout: float = 120.0) -> Iterator[str]:
    """Yield the base URL of `app` on 127.0.0.1, healthy unless wait_ready is False."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="llmship-serve", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise PackageError(f"the server on port {port} did not start")
            time.sleep(0.05)
        while wait_ready:
            ping = httpx.get(f"{url}/ping")
            if ping.status_code == 200:
                break
            if ping.json().get("status") == "failed" or time.monotonic() > deadline:
                raise PackageError(f"the model did not become ready: {ping.text}")
            time.sleep(0.1)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_until_healthy(url: str, process, timeout: float, healthy=None) -> None:
    """Poll `url`/ping until `healthy(response)` (default: status 200); raise PackageError,
    with the process's output when it has one, if the process exits or time runs out."""
    healthy = healthy or (lambda response: response.status_code == 200)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise PackageError(
                f"the server exited ({process.returncode}) before it was healthy: {output[-2000:]}"
            )
        if time.monotonic() > deadline:
            raise PackageError(f"the server at {url} did not become healthy in {timeout:.0f} s")
        try:
            if healthy(httpx.get(f"{url}/ping")):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
