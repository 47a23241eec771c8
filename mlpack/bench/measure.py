"""One measurement: a load point against a target, with the server's side of the story.

``measure`` encodes the requests for the point's transport, runs the load generator
(warm-up drained first), reads the server's statistics around the measured phase and,
for a local server, samples its CPU and RSS. The result is a plain dict (JSON-ready).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from .drivers import GrpcDriver, HttpDriver
from .errors import BenchError
from .loadgen import LoadProgress, run_load
from .payloads import encode
from .server_stats import ProcessSampler, fetch_stats, stats_delta


class TargetError(BenchError):
    """The server cannot be reached or does not know the model."""


@dataclass(frozen=True)
class Target:
    """Where to send load: REST base URL, gRPC address, model (and version), local PID."""

    url: str
    model: str
    grpc: str | None = None
    version: str | None = None
    pid: int | None = None


@dataclass(frozen=True)
class Point:
    """One load point: transport, concurrency (or rate), rows per request, how long."""

    transport: str = "rest"
    concurrency: int = 1
    rows: int = 1
    rate: float | None = None
    duration: float | None = 10.0
    requests: int | None = None
    warmup: float = 0.0
    timeout: float = 30.0
    server: dict[str, Any] = field(default_factory=dict)  # settings the server ran with

    def label(self) -> str:
        load = f"rate={self.rate:g}/s" if self.rate else f"c={self.concurrency}"
        return f"{self.transport} {load} rows={self.rows}"

    def config(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("duration", "requests", "warmup", "timeout"):
            out.pop(key)
        return out


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else "http://" + url


def _infer_path(target: Target) -> str:
    path = f"/v2/models/{quote(target.model, safe='')}"
    if target.version:
        path += f"/versions/{quote(target.version, safe='')}"
    return path + "/infer"


async def fetch_metadata(target: Target) -> dict[str, Any]:
    """The model's V2 metadata over REST; a clear ``TargetError`` when it cannot be had."""
    path = _infer_path(target)[: -len("/infer")]
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(target.url + path, timeout=10.0)
    except httpx.HTTPError as error:
        raise TargetError(f"cannot reach {target.url}: {type(error).__name__}: {error}") from None
    if response.status_code != 200:
        try:
            detail = response.json().get("error", response.text)
        except ValueError:
            detail = response.text
        raise TargetError(
            f"{target.url}: model {target.model!r} metadata: HTTP {response.status_code}: {detail}"
        )
    metadata: dict[str, Any] = response.json()
    return metadata


def driver_for(target: Target, transport: str, timeout: float) -> HttpDriver | GrpcDriver:
    if transport == "grpc":
        if not target.grpc:
            raise TargetError("the gRPC transport needs the server's gRPC address (--grpc-url)")
        return GrpcDriver(target.grpc, timeout=timeout)
    return HttpDriver.from_url(target.url + _infer_path(target), timeout=timeout)


async def measure(
    target: Target,
    point: Point,
    requests: Sequence[dict[str, Any]],
    progress: LoadProgress | None = None,
) -> dict[str, Any]:
    """Run ``point`` against ``target`` sending ``requests`` (V2 dicts) round-robin."""
    bodies = [encode(r, point.transport, target.model, target.version) for r in requests]
    driver = driver_for(target, point.transport, point.timeout)
    sampler = ProcessSampler(target.pid) if target.pid else None
    async with httpx.AsyncClient() as client:
        before: dict[str, Any] = {}

        async def on_measure() -> None:
            before["stats"] = await fetch_stats(client, target.url, target.model, target.version)
            if sampler is not None:
                sampler.start()

        try:
            result = await run_load(
                driver,
                bodies,
                concurrency=point.concurrency,
                duration=point.duration,
                requests=point.requests,
                warmup=point.warmup,
                rate=point.rate,
                progress=progress,
                on_measure=on_measure,
            )
        except OSError as error:
            raise TargetError(f"cannot connect for {point.transport}: {error}") from None
        except ValueError as error:  # the load generator refuses the point's numbers
            raise TargetError(f"{point.label()}: {error}") from None
        process = await sampler.stop() if sampler is not None else None
        after = await fetch_stats(client, target.url, target.model, target.version)
    split = stats_delta(before.get("stats"), after)
    return {
        "label": point.label(),
        "config": point.config(),
        "client": result.to_dict(),
        "server": split.to_dict() if split is not None else None,
        "process": process,
    }
