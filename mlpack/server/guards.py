"""The REST and metrics apps' protective layers, in their order, from settings.

Outermost first: trusted hosts (``hosts``) → CORS and REST metrics (``observability``)
→ the cross-site check (``browsers``) → API keys and the control-plane
switch (``auth``) → the infer fast path → Starlette. Every layer sits outside the fast
path, so no route escapes it; a layer that cannot refuse anything is left out.
"""

from __future__ import annotations

from typing import Any

from ..settings import Settings
from .auth import AccessGuard, AccessPolicy, MetricsGuard
from .browsers import BrowserGuard


def inner_guards(app: Any, settings: Settings, policy: AccessPolicy) -> Any:
    """What goes inside CORS: the access policy, then the browser checks around it."""
    if policy.active:
        app = AccessGuard(app, policy, settings.root_path)
    return BrowserGuard(app, settings.cors_settings)


def outer_guards(app: Any, settings: Settings) -> Any:
    """What goes outside everything: the trusted-hosts check (when configured)."""
    if settings.trusted_hosts:
        from .hosts import TrustedHosts

        app = TrustedHosts(app, settings.trusted_hosts)
    return app


def metrics_guards(app: Any, settings: Settings, policy: AccessPolicy) -> Any:
    """The metrics port: a key when ``auth.metrics_requires_token``; trusted hosts."""
    if policy.metrics_requires_token:
        app = MetricsGuard(app, policy)
    return outer_guards(app, settings)
