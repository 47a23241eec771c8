"""Reading a ``--frontends`` server from a test: its metrics scrape, and waiting for a state."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.helpers.server import RunningServer

BOUND = 90.0  # seconds: a bound for a hung server, not a criterion


def scrape(server: RunningServer, timeout: float = 30.0) -> dict[str, float]:
    """The supervisor's metrics as {sample with labels: value}."""
    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=timeout).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def wait_until(condition: Callable[[], bool], what: str, server: RunningServer) -> None:
    """Poll ``condition`` until it holds; fail (with the log) if the server exits or hangs."""
    deadline = time.monotonic() + BOUND
    while not condition():
        assert server.process.poll() is None, f"server exited:\n{server.log()}"
        assert time.monotonic() < deadline, f"never saw {what}:\n{server.log()}"
        time.sleep(0.05)
