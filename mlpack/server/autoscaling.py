"""Gauges to autoscale on: per-model requests in flight and waiting, worker pools' busy share.

Read from the engine's own state at scrape time (nothing on the hot path):

* ``model_requests_in_flight{model_name, model_version}``: requests the server has accepted
  for the model and not yet answered (waiting ones included). The per-pod average of this
  is the signal ``mlpack deploy`` scales on (HPA Pods metric or KEDA Prometheus query).
* ``model_requests_waiting{model_name, model_version}``: of those, the ones not yet started
  (in the adaptive batcher's queue, or waiting for a free worker slot).
* ``worker_pool_busy_ratio{pool}``: share of a pool's live workers with work in hand (with
  several front-ends, the supervisor's: from each worker's status, asked at scrape time,
  so every front-end's calls count).
* ``worker_pool_waiting{pool}``: requests waiting for a slot in that pool.
* ``worker_pool_live_workers{pool}``: workers alive and serving (0: the pool's models are
  not ready and answer 503 + Retry-After until a replacement starts).
* ``worker_pool_processes_pss_bytes{pool}``: memory of the pool's live workers (and its
  zygote) as PSS, which splits shared pages between the processes mapping them.
* ``worker_pool_restarts_total``, ``worker_pool_failed_starts_total``,
  ``worker_pool_hung_total``, ``worker_pool_recycled_total`` ``{pool}``: why workers were
  replaced (died or hung, a start that failed and is retried with backoff, killed for not
  answering pings, recycled after ``max_requests_per_worker``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..engine.pools import pool_pss
from ..engine.registry import ModelRegistry
from ..engine.workers.pool import WorkerPool

IN_FLIGHT = "model_requests_in_flight"
WAITING = "model_requests_waiting"
POOL_BUSY = "worker_pool_busy_ratio"
POOL_WAITING = "worker_pool_waiting"


class AutoscalingCollector:
    """A prometheus-client collector over the registry and the worker pools.

    ``owner`` False: a front-end among several, whose pools are views of the supervisor's:
    it reports requests waiting here (summed over front-ends by the supervisor) but not
    the pools' busy share or health, which the supervisor reports once
    (``PoolHealthCollector``).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        pools: Callable[[], list[tuple[str, WorkerPool]]] = list,
        owner: bool = True,
    ) -> None:
        self.registry = registry
        self._pools = pools  # every started pool by name (the placement's, read at scrape)
        self.owner = owner

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        labels = ["model_name", "model_version"]
        in_flight = GaugeMetricFamily(
            IN_FLIGHT, "Requests accepted for the model and not yet answered.", labels=labels
        )
        waiting = GaugeMetricFamily(
            WAITING, "Requests accepted for the model and not yet started.", labels=labels
        )
        pools = self._pools()
        pool_waiting_by_model: dict[str, int] = {}
        for _, pool in pools:
            for key in pool.waiting_keys():
                name = key.rsplit("#", 1)[0]
                pool_waiting_by_model[name] = pool_waiting_by_model.get(name, 0) + 1
        for entry in self.registry.entries():
            values = [entry.name, entry.version or ""]
            in_flight.add_metric(values, entry.in_flight)
            batcher = getattr(entry.runner, "batcher", None)
            queued = batcher.queued if batcher is not None else 0
            waiting.add_metric(values, queued + pool_waiting_by_model.get(entry.name, 0))
        yield in_flight
        yield waiting
        pool_waiting = GaugeMetricFamily(
            POOL_WAITING, "Requests waiting for a worker slot.", labels=["pool"]
        )
        for name, pool in pools:
            pool_waiting.add_metric([name], len(pool.waiting_keys()))
        yield pool_waiting
        if self.owner:
            yield _busy_family(pools)
            yield from _pool_health(pools)


def _busy_ratio(pool: WorkerPool) -> float:
    """Share of the pool's live workers with work in hand: calls of the pool's owner, or
    (shared pools) any front-end's, as of the worker's status fetched for this scrape."""
    alive = [worker for worker in pool.workers if worker.alive]
    working = sum(1 for worker in alive if worker.in_flight > 0 or worker.held > 0)
    return working / len(alive) if alive else 0.0


def _busy_family(pools: list[tuple[str, WorkerPool]]) -> Any:
    """``worker_pool_busy_ratio`` of each pool."""
    from prometheus_client.core import GaugeMetricFamily

    busy = GaugeMetricFamily(
        POOL_BUSY, "Share of the pool's live workers with work in hand.", labels=["pool"]
    )
    for name, pool in pools:
        busy.add_metric([name], _busy_ratio(pool))
    return busy


class PoolHealthCollector:
    """The pools' live workers, busy share, replacement counters and PSS, read at scrape: the
    front-end supervisor's, which owns the pools every front-end shares (one copy)."""

    def __init__(self, pools: Callable[[], list[tuple[str, WorkerPool]]]) -> None:
        self._pools = pools

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        pools = self._pools()
        yield from _pool_health(pools)
        yield _busy_family(pools)
        connected = GaugeMetricFamily(
            "worker_pool_worker_frontends",
            "Front-ends connected to each live worker (as of its last health ping).",
            labels=["pool", "worker"],
        )
        for name, pool in pools:
            for worker in pool.workers:
                if worker.alive and worker.path:
                    connected.add_metric([name, str(worker.worker_id)], worker.connections)
        yield connected


def _pool_health(pools: list[tuple[str, WorkerPool]]) -> Iterator[Any]:
    """Live workers and the pool's replacement counters (why capacity came and went)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    live = GaugeMetricFamily(
        "worker_pool_live_workers", "Workers alive and serving.", labels=["pool"]
    )
    counters = {
        "restarts": "Workers started to replace one that died, hung or was recycled.",
        "failed_starts": "Worker starts that failed (retried with backoff).",
        "hung": "Workers killed for not answering a ping.",
        "recycled": "Workers recycled after max_requests_per_worker.",
    }
    families = {
        field: CounterMetricFamily(f"worker_pool_{field}", text, labels=["pool"])
        for field, text in counters.items()
    }
    memory = GaugeMetricFamily(
        "worker_pool_processes_pss_bytes",
        "PSS of the pool's live workers and its zygote (shared pages split between them).",
        labels=["pool"],
    )
    for name, pool in pools:
        live.add_metric([name], sum(1 for worker in pool.workers if worker.alive))
        for field, family in families.items():
            family.add_metric([name], getattr(pool, field))
        memory.add_metric([name], pool_pss(pool))
    yield live
    yield memory
    yield from families.values()
