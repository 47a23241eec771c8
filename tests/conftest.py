"""Fixtures shared by unit and end-to-end tests."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from hypothesis import settings

# Property tests judge results, never speed: hypothesis's per-example deadline (200 ms) is a
# wall-clock bound that fails on a loaded machine (seen: test_base64_codec::test_round_trip).
settings.register_profile("mlpack", deadline=None)
settings.load_profile("mlpack")


@pytest.fixture(autouse=True)
def clean_mlpack_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No MLPACK_* (or MLSERVER_*) variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("MLPACK_", "MLSERVER_")) and name not in {
            "MLPACK_REQUIRE_DOCKER",
            "MLPACK_TEST_BASE_IMAGE",
            "MLPACK_REQUIRE_BROWSER",
            "MLPACK_REQUIRE_H2LOAD",
        }:
            monkeypatch.delenv(name)
    return


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
