"""The line ``mlpack start`` prints once every model is ready: what to try first."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..engine.registry import ModelEntry

REQUEST_FILE = "request.json"
_WILDCARDS = {"0.0.0.0", "::", ""}


def ready_hint(
    entries: Iterable[ModelEntry],
    host: str,
    port: int,
    tls: TLSHint | None = None,
    auth_header: str | None = None,
) -> str | None:
    """``ready: try curl ...`` when every model is READY (None otherwise or with no models).

    The example sends the model's ``request.json`` when its folder has one (as ``mlpack init``
    projects and the examples do), else asks for the model's metadata. With TLS the command
    uses ``https://`` (and the client certificate flags under mutual TLS); with API keys on
    (``auth_header`` names the header) it sends a placeholder key the user fills in.
    """
    entries = sorted(entries, key=lambda e: (e.name, e.version or ""))
    if not entries or any(entry.state.value != "READY" for entry in entries):
        return None
    first = entries[0]
    shown = "localhost" if host in _WILDCARDS else f"[{host}]" if ":" in host else host
    address = f"{shown}:{port}"
    flags = ""
    if tls is not None:
        address = f"https://{address}"
        flags += tls.curl_flags()
    if auth_header is not None:
        flags += f" -H {shlex.quote(_credential_header(auth_header))}"
    base = f"curl -s{flags} {address}/v2/models/{first.name}"
    request = Path(first.settings.folder) / REQUEST_FILE if first.settings.folder else None
    if request is not None and request.is_file():
        command = (
            f"{base}/infer -H 'Content-Type: application/json' -d @{shlex.quote(_shown(request))}"
        )
    else:
        command = base
    count = f"{len(entries)} models" if len(entries) > 1 else f"model '{first.name}'"
    return f"ready ({count} READY): try  {command}"


@dataclass(frozen=True)
class TLSHint:
    """What a curl command needs to reach a TLS listener."""

    cert_file: str
    mutual: bool

    def curl_flags(self) -> str:
        # The served chain as the trust anchor works for self-signed certificates; with a
        # public CA the flag is harmless. Under mutual TLS curl also needs a client pair.
        flags = f" --cacert {shlex.quote(_shown(Path(self.cert_file)))}"
        if self.mutual:
            flags += " --cert CLIENT.pem --key CLIENT.key"
        return flags


def _credential_header(header: str) -> str:
    """The header line carrying a data-plane key, as the auth middleware expects it."""
    if header.lower() == "authorization":
        return "Authorization: Bearer $MLPACK_API_KEY"
    return f"{header}: $MLPACK_API_KEY"


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative
