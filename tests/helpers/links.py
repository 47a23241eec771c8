"""Two ``ControlLink`` ends joined by a socket pair, for unit tests of the control link."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from mlpack.server.frontend_link import ControlLink


async def linked_pair(handler: Any) -> tuple[ControlLink, ControlLink, list[asyncio.Task[None]]]:
    """A caller's end, an end answering with ``handler``, and the tasks reading both."""
    left_sock, right_sock = socket.socketpair()
    left, right = ControlLink(), ControlLink(handler=handler)
    await left.open(left_sock)
    await right.open(right_sock)
    return left, right, [asyncio.create_task(left.run()), asyncio.create_task(right.run())]
