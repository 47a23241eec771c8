"""Experiment files (YAML): a matrix of transports x concurrency (or rate) x rows x server settings.

::

    extends: base.yaml          # optional: this file's values override the base's
    title: iris, two settings
    model: iris
    folder: ./iris              # start a local `mlpack start` per server-settings combination
    # target: {url: localhost:8080, grpc: localhost:8081}   # ...or measure a running server
    duration: 5                 # or requests: 2000
    warmup: 1
    matrix:
      transport: [rest, grpc]
      concurrency: [1, 8, 32]   # or rate: [100, 200] (open loop)
      rows: [1, 16]
      server:                   # a list of settings sets, or a mapping of lists (cross product)
        - {}
        - {max_batch_size: 16, max_batch_time: 0.002}
    output: {json: out.json, markdown: out.md, html: out.html}

Several files given with ``--experiment`` merge in order, like ``extends``. Mappings
merge key by key; lists and values replace. Relative paths are relative to the file
that names them.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import BenchError
from .live import LiveView
from .local import local_server, split_settings
from .measure import Target, normalise_url
from .report import make_document
from .sweep import RequestSource, expand_points, run_points

MAX_EXTENDS = 8
MAX_POINTS = 1000


class ExperimentError(BenchError):
    """An experiment file is missing, malformed or inconsistent."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Matrix(_Strict):
    transport: list[Literal["rest", "rest-binary", "grpc"]] = ["rest"]
    concurrency: list[int] = Field(default_factory=lambda: [1])
    rate: list[float] = Field(default_factory=list)
    rows: list[int] = Field(default_factory=lambda: [1])
    server: list[dict[str, Any]] | dict[str, list[Any]] = Field(
        default_factory=lambda: [dict[str, Any]()]
    )

    @field_validator("concurrency", "rows", "rate")
    @classmethod
    def _positive(cls, values: list[Any]) -> list[Any]:
        if any(v <= 0 for v in values):
            raise ValueError("values must be positive")
        return values

    def server_sets(self) -> list[dict[str, Any]]:
        if isinstance(self.server, list):
            return self.server or [{}]
        keys = list(self.server)
        return [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*self.server.values())
        ]


class TargetSpec(_Strict):
    url: str
    grpc: str | None = None


class Experiment(_Strict):
    title: str = "mlpack bench experiment"
    model: str
    model_version: str | None = None
    folder: Path | None = None
    target: TargetSpec | None = None
    data: Path | None = None
    shapes: dict[str, list[int]] = Field(default_factory=dict)
    duration: float | None = Field(default=10.0, gt=0)
    requests: int | None = Field(default=None, ge=1)
    warmup: float = Field(default=1.0, ge=0)
    timeout: float = Field(default=30.0, gt=0)
    local: bool = True
    matrix: Matrix = Field(default_factory=Matrix)
    output: dict[Literal["json", "markdown", "html"], Path] = Field(default_factory=dict)

    def output_path(self, kind: str) -> Path | None:
        return {str(k): v for k, v in self.output.items()}.get(kind)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _resolve_paths(raw: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    for key in ("folder", "data"):
        if isinstance(raw.get(key), str):
            raw[key] = str((base_dir / raw[key]).resolve())
    if isinstance(raw.get("output"), dict):
        raw["output"] = {
            k: str((base_dir / v).resolve()) if isinstance(v, str) else v
            for k, v in raw["output"].items()
        }
    return raw


def _read(path: Path, depth: int = 0) -> dict[str, Any]:
    import yaml

    if depth > MAX_EXTENDS:
        raise ExperimentError(f"{path}: 'extends' nests more than {MAX_EXTENDS} deep")
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ExperimentError(f"cannot read {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise ExperimentError(f"{path} is not valid YAML: {error}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ExperimentError(f"{path}: expected a mapping at the top level")
    raw = _resolve_paths(raw, path.parent)
    parent = raw.pop("extends", None)
    if parent is not None:
        raw = _merge(_read((path.parent / str(parent)).resolve(), depth + 1), raw)
    return raw


def load_experiment(paths: list[Path]) -> Experiment:
    """Read, merge (in order) and validate experiment files."""
    raw: dict[str, Any] = {}
    for path in paths:
        raw = _merge(raw, _read(path))
    try:
        spec = Experiment.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in error.errors()
        )
        raise ExperimentError(f"{', '.join(map(str, paths))}: {problems}") from None
    if (spec.folder is None) == (spec.target is None):
        raise ExperimentError("give exactly one of 'folder' (start local servers) or 'target'")
    sets = spec.matrix.server_sets()
    if spec.target is not None and sets != [{}]:
        raise ExperimentError("'matrix.server' needs 'folder': settings apply to servers it starts")
    for values in sets:
        split_settings(values)  # unknown names fail before anything starts
    count = (
        len(sets)
        * len(spec.matrix.transport)
        * len(spec.matrix.rows)
        * len(spec.matrix.rate or spec.matrix.concurrency)
    )
    if count > MAX_POINTS:
        raise ExperimentError(f"the matrix has {count} points; at most {MAX_POINTS}")
    return spec


async def run_experiment(spec: Experiment, progress: bool = True) -> dict[str, Any]:
    """Run every point of the matrix; a local server per server-settings combination."""
    shapes = {k: tuple(v) for k, v in spec.shapes.items()}
    source = RequestSource(data=spec.data, shapes=shapes)
    common: dict[str, Any] = {
        "duration": spec.duration,
        "requests": spec.requests,
        "warmup": spec.warmup,
        "timeout": spec.timeout,
    }
    results: list[dict[str, Any]] = []
    with LiveView(enabled=progress) as view:
        for settings in spec.matrix.server_sets():
            points = expand_points(
                spec.matrix.transport,
                spec.matrix.concurrency,
                spec.matrix.rows,
                spec.matrix.rate,
                server=settings,
                **common,
            )
            if spec.target is not None:
                url = normalise_url(spec.target.url)
                target = Target(url, spec.model, spec.target.grpc, spec.model_version)
                results += await run_points(target, points, source, view)
                continue
            assert spec.folder is not None
            server, model_values = split_settings(settings)
            async with local_server(spec.folder, server, model_values, spec.model) as process:
                target = Target(
                    process.base_url,
                    spec.model,
                    process.grpc_target,
                    spec.model_version,
                    process.proc.pid if spec.local else None,
                )
                results += await run_points(target, points, source, view)
    return make_document(results, spec.title, experiment=spec.model_dump(mode="json"))
