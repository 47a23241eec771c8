"""``mlpack deploy``: Kubernetes, KServe and Knative manifests, rendered offline.

``values.py`` holds what a deployment needs (from flags, a values file and the project's
settings), one module per target turns values into plain manifest dicts, and
``render.py`` chooses the target and writes YAML. Nothing here talks to a cluster.
"""

from __future__ import annotations

from .render import TARGETS, render_manifests, to_yaml
from .values import DeployValues, load_values

__all__ = ["TARGETS", "DeployValues", "load_values", "render_manifests", "to_yaml"]
