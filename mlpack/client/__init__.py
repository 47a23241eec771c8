"""Clients for Open Inference Protocol (V2) servers.

``Client`` / ``AsyncClient`` speak REST (JSON or binary tensors); the gRPC client lives in
``mlpack.client.grpc`` and loads grpc only when imported.
"""

from __future__ import annotations

from .errors import ClientError, ServerError, Timeout, TransportError
from .rest import AsyncClient, Client

__all__ = ["AsyncClient", "Client", "ClientError", "ServerError", "Timeout", "TransportError"]
