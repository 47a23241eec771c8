"""Bind listening sockets up front, so a busy port is a clear startup error."""

from __future__ import annotations

import socket

from ..errors import PortInUse as PortInUse  # defined in the error tree; re-exported


def bind_socket(
    host: str, port: int, what: str, reuse_port: bool = False, listen: bool = True
) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when ``host`` contains ':').

    ``reuse_port``: join the other front-ends on the port (SO_REUSEPORT; the kernel spreads
    connections over them). ``listen=False``: bound only; the server listens when it starts.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise PortInUse(f"cannot listen for {what} on {host}:{port}: {error.strerror}") from None
    if listen:
        sock.listen(2048)
    sock.setblocking(False)
    return sock


def reserve_port(host: str, port: int, what: str) -> socket.socket:
    """Hold ``host:port`` for a group of front-ends: bound alone (a busy port fails here,
    even one another server shares with SO_REUSEPORT), then opened to SO_REUSEPORT peers
    of this user. It never listens, so it takes no connections; 0 picks a free port."""
    sock = bind_socket(host, port, what, listen=False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock
