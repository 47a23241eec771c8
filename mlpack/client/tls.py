"""Client-side TLS: verify servers against a CA (or not at all), present a client certificate.

``ssl_context`` serves the REST clients; ``grpc_credentials`` the gRPC client (gRPC
always verifies the server: pass a CA for a private one).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from ..errors import ClientError


def ssl_context(
    ca: str | None = None,
    cert: str | None = None,
    key: str | None = None,
    insecure: bool = False,
) -> ssl.SSLContext:
    """A context verifying servers against ``ca`` (system roots when None), unless ``insecure``."""
    try:
        context = ssl.create_default_context(cafile=ca)
        if cert:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        raise ClientError(f"TLS files not usable: {error}") from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def grpc_credentials(ca: str | None = None, cert: str | None = None, key: str | None = None) -> Any:
    """gRPC channel credentials: ``ca`` to verify the server, ``cert``/``key`` for mutual TLS."""
    import grpc

    try:
        root = Path(ca).read_bytes() if ca else None
        chain = Path(cert).read_bytes() if cert else None
        private = Path(key).read_bytes() if key else None
    except OSError as error:
        raise ClientError(f"TLS files not usable: {error}") from None
    return grpc.ssl_channel_credentials(root, private, chain)
