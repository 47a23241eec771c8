"""Who may call what: API keys in two scopes, and the control-plane switch.

Every REST route and gRPC method falls in one of three scopes:

* ``open``: health (``/v2/health/live``, ``/v2/health/ready``, gRPC ``ServerLive`` /
  ``ServerReady`` and ``grpc.health.v1``), so probes need no key;
* ``control``: the repository API (REST ``/v2/repository/...``, gRPC ``Repository*``);
* ``data``: everything else, including routes added later (default deny).

A control-plane key also opens the data plane. Keys are compared in constant time
(sha256 digests through ``hmac.compare_digest``, every key checked). ``AccessPolicy``
imports no web or gRPC library: the REST guard (``AccessGuard``, an ASGI middleware
outside ``InferFastPath`` so the fast path is covered) and the gRPC interceptor
(``grpc_access``) both call ``check``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from ..errors import InvalidSettings, MLPackError, PermissionDenied, Unauthenticated
from ..settings import Settings

Scope = Literal["open", "data", "control"]
ControlPlane = Literal["on", "read_only", "off"]

OPEN_REST_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
_GRPC_SERVICE = "/inference.GRPCInferenceService/"
OPEN_GRPC_METHODS = frozenset({_GRPC_SERVICE + "ServerLive", _GRPC_SERVICE + "ServerReady"})
_GRPC_HEALTH = "/grpc.health.v1.Health/"
CONTROL_GRPC_READS = frozenset({_GRPC_SERVICE + "RepositoryIndex"})
CONTROL_GRPC_WRITES = frozenset(
    {_GRPC_SERVICE + "RepositoryModelLoad", _GRPC_SERVICE + "RepositoryModelUnload"}
)


def rest_scope(path: str) -> tuple[Scope, bool]:
    """(scope, whether it changes state) of a REST path (``root_path`` already removed)."""
    if path in OPEN_REST_PATHS:
        return "open", False
    if path == "/v2/repository" or path.startswith("/v2/repository/"):
        return "control", path.endswith(("/load", "/unload"))
    return "data", False


def grpc_scope(method: str) -> tuple[Scope, bool]:
    """(scope, whether it changes state) of a full gRPC method name."""
    if method in OPEN_GRPC_METHODS or method.startswith(_GRPC_HEALTH):
        return "open", False
    if method in CONTROL_GRPC_WRITES:
        return "control", True
    if method in CONTROL_GRPC_READS:
        return "control", False
    return "data", False


def describe_access(host: str, policy: AccessPolicy, tls: str = "TLS off") -> str:
    """The banner's access line: which interfaces listen, whether keys are needed."""
    if host in ("0.0.0.0", "::", ""):
        where = f"ALL interfaces ({host or '0.0.0.0'})"
    elif host in ("127.0.0.1", "::1", "localhost"):
        where = f"loopback only ({host})"
    else:
        where = f"interface {host}"
    auth = "auth ON (API keys)" if policy.enabled else "auth OFF (anyone who reaches the port)"
    return f"{where}; {auth}; {tls}; control plane {policy.control_plane}"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class AccessPolicy:
    """Decides, from a credential, whether a call in a scope may go ahead.

    Parameters:
        data_tokens: keys for the data plane.
        control_tokens: keys for the control plane (and the data plane).
        header: "authorization" (``Bearer KEY``) or the name of a header holding the key.
        control_plane: "on", "read_only" (no load/unload) or "off" (no repository API).
        metrics_requires_token: the metrics port asks for a key too.
    """

    def __init__(
        self,
        data_tokens: Iterable[str] = (),
        control_tokens: Iterable[str] = (),
        header: str = "authorization",
        control_plane: ControlPlane = "on",
        metrics_requires_token: bool = False,
    ) -> None:
        self._data = [_digest(t) for t in data_tokens if t]
        self._control = [_digest(t) for t in control_tokens if t]
        self.header = header.lower()
        self.control_plane = control_plane
        self.metrics_requires_token = metrics_requires_token and self.enabled

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        """The policy the settings describe (key files are read here, once)."""
        auth = settings.auth
        data = [t.get_secret_value() for t in auth.data_plane_tokens]
        control = [t.get_secret_value() for t in auth.control_plane_tokens]
        data += _read_tokens(auth.data_plane_tokens_file)
        control += _read_tokens(auth.control_plane_tokens_file)
        return cls(data, control, auth.header, settings.control_plane, auth.metrics_requires_token)

    @property
    def enabled(self) -> bool:
        """Whether any key is configured (authentication on)."""
        return bool(self._data or self._control)

    @property
    def active(self) -> bool:
        """Whether any call can be refused (auth on, or the control plane restricted)."""
        return self.enabled or self.control_plane != "on"

    def check(self, scope: Scope, changes_state: bool, credential: str | None) -> None:
        """Raise ``Unauthenticated`` / ``PermissionDenied`` unless the call may go ahead."""
        if scope == "open":
            return
        if self.enabled:
            granted = self._scope_of(credential)
            if granted is None:
                if credential is None:
                    raise Unauthenticated(
                        f"authentication required: send the API key in the {self._where()}"
                    )
                raise Unauthenticated("the API key is not valid")
            if scope == "control" and granted != "control":
                raise PermissionDenied(
                    "this API key is for the data plane; "
                    "the repository API needs a control-plane key"
                )
        if scope == "control":
            if self.control_plane == "off":
                raise PermissionDenied("the repository API is switched off (control_plane: off)")
            if changes_state and self.control_plane == "read_only":
                raise PermissionDenied("the repository API is read-only (control_plane: read_only)")

    def check_metrics(self, credential: str | None) -> None:
        """The metrics port: open unless ``metrics_requires_token`` (either scope then)."""
        if self.metrics_requires_token:
            self.check("data", False, credential)

    def credential(self, value: str | None) -> str | None:
        """The key inside a header value (``Bearer KEY`` for Authorization), or None."""
        if value is None:
            return None
        if self.header == "authorization":
            scheme, _, token = value.strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else ""
        return value.strip()

    def _scope_of(self, credential: str | None) -> Scope | None:
        if not credential:
            return None
        digest = _digest(credential)
        control = _matches(digest, self._control)
        data = _matches(digest, self._data)
        return "control" if control else "data" if data else None

    def _where(self) -> str:
        if self.header == "authorization":
            return "Authorization header as 'Bearer KEY'"
        return f"{self.header} header"


def _matches(digest: bytes, keys: Sequence[bytes]) -> bool:
    found = False
    for key in keys:  # no early exit: the time taken does not depend on which key matched
        found |= hmac.compare_digest(digest, key)
    return found


def _read_tokens(path: str | None) -> list[str]:
    if not path:
        return []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InvalidSettings(f"cannot read API keys from {path}: {error}") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None


class AccessGuard:
    """ASGI middleware: refuse REST calls the policy does not allow (401 / 403).

    It sits outside the infer fast path, so every route, fast or not, goes through it.
    """

    def __init__(self, app: Any, policy: AccessPolicy, root_path: str = "") -> None:
        self.app = app
        self.policy = policy
        self.root_path = root_path
        self._header = policy.header.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            root_path = scope.get("root_path") or self.root_path
            if root_path and path.startswith(root_path):
                path = path[len(root_path) :]
            kind, changes_state = rest_scope(path)
            if kind != "open":
                try:
                    self.policy.check(
                        kind, changes_state, self.policy.credential(_header(scope, self._header))
                    )
                except MLPackError as error:
                    await _refuse(error, scope, receive, send)
                    return
        await self.app(scope, receive, send)


class MetricsGuard:
    """ASGI middleware for the metrics port: a key when ``metrics_requires_token``."""

    def __init__(self, app: Any, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy
        self._header = policy.header.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            try:
                self.policy.check_metrics(self.policy.credential(_header(scope, self._header)))
            except MLPackError as error:
                await _refuse(error, scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _refuse(error: MLPackError, scope: Any, receive: Any, send: Any) -> None:
    from .error_handlers import error_response

    response = error_response(error, scope["path"])
    if isinstance(error, Unauthenticated):
        response.headers["WWW-Authenticate"] = "Bearer"
    await response(scope, receive, send)
