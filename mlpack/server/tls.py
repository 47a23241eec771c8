"""TLS for REST and gRPC from certificate files, with reload on SIGHUP or file change.

``ServerTLS`` is given the server's certificate chain and key (and optionally a client
CA: mutual TLS, client certificates required). REST gets uvicorn's ``ssl_*`` options;
every SSL context uvicorn builds is registered here and reloaded in place
(``load_cert_chain`` on the live context: new handshakes use the new files, open
connections carry on). gRPC gets ``dynamic_ssl_server_credentials``, whose fetcher gRPC
calls on each new handshake and which hands over the new files once they changed. A
background task checks the files' modification times every ``reload_interval``
seconds; SIGHUP reloads at once. A reload that fails (a half-written file) keeps the
old certificate and logs why.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from pathlib import Path
from typing import Any

from ..errors import InvalidSettings

logger = logging.getLogger("mlpack.server")


class ServerTLS:
    """Certificate files for both transports, reloaded when they change.

    Parameters:
        cert_file: PEM certificate chain the server presents.
        key_file: its PEM private key.
        client_ca_file: PEM CA bundle; when set, clients must present a certificate it signed.
    """

    def __init__(self, cert_file: str, key_file: str, client_ca_file: str | None = None) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.client_ca_file = client_ca_file
        self._contexts: list[ssl.SSLContext] = []
        self.generation = 0
        self._grpc_generation = 0
        self._stamps = self._read_stamps()
        self._material = self._read_material()  # fails early on missing or bad files

    @property
    def mutual(self) -> bool:
        return self.client_ca_file is not None

    def _files(self) -> list[str]:
        return [f for f in (self.cert_file, self.key_file, self.client_ca_file) if f]

    def _read_stamps(self) -> tuple[tuple[int, int], ...]:
        stamps = []
        for name in self._files():
            try:
                info = os.stat(name)
            except OSError as error:
                raise InvalidSettings(f"TLS file {name}: {error.strerror or error}") from None
            stamps.append((info.st_mtime_ns, info.st_size))
        return tuple(stamps)

    def _read_material(self) -> tuple[bytes, bytes, bytes | None]:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
            if self.client_ca_file:
                context.load_verify_locations(self.client_ca_file)
        except (OSError, ssl.SSLError) as error:
            raise InvalidSettings(f"TLS certificate or key not usable: {error}") from None
        ca = Path(self.client_ca_file).read_bytes() if self.client_ca_file else None
        return Path(self.cert_file).read_bytes(), Path(self.key_file).read_bytes(), ca

    # -- REST (uvicorn) ----------------------------------------------------------------
    def uvicorn_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"ssl_certfile": self.cert_file, "ssl_keyfile": self.key_file}
        if self.client_ca_file:
            options["ssl_ca_certs"] = self.client_ca_file
            options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        return options

    def register(self, context: ssl.SSLContext | None) -> None:
        """Reload ``context`` (one uvicorn built) along with the files."""
        if context is not None and context not in self._contexts:
            self._contexts.append(context)

    # -- gRPC --------------------------------------------------------------------------
    def grpc_credentials(self) -> Any:
        import grpc

        self._grpc_generation = self.generation
        return grpc.dynamic_ssl_server_credentials(
            self._grpc_configuration(),
            self._grpc_fetch,
            require_client_authentication=self.mutual,
        )

    def _grpc_configuration(self) -> Any:
        import grpc

        cert, key, ca = self._material
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def _grpc_fetch(self) -> Any:
        """Called by gRPC on each new handshake: the new files once, else None (unchanged)."""
        if self._grpc_generation == self.generation:
            return None
        self._grpc_generation = self.generation
        return self._grpc_configuration()

    # -- reload ------------------------------------------------------------------------
    def reload(self, force: bool = False) -> bool:
        """Load the files again if they changed (or ``force``); True when reloaded."""
        try:
            stamps = self._read_stamps()
            if not force and stamps == self._stamps:
                return False
            material = self._read_material()
            for context in self._contexts:
                context.load_cert_chain(self.cert_file, self.key_file)
                if self.client_ca_file:
                    context.load_verify_locations(self.client_ca_file)
        except (InvalidSettings, OSError, ssl.SSLError) as error:
            logger.error("TLS reload failed, keeping the previous certificate: %s", error)
            return False
        self._stamps, self._material = stamps, material
        self.generation += 1
        logger.info("TLS certificate reloaded from %s", self.cert_file)
        return True

    async def watch(self, interval: float) -> None:
        """Reload whenever the files change, checking every ``interval`` seconds."""
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.reload)
