"""The front-end supervisor's parts that need no process: counts, the link, the merge."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import pytest

from mlpack.errors import ModelNotFound
from mlpack.server.frontend_link import Apply, Collect, ControlLink, Done, Snapshot
from mlpack.server.frontend_metrics import FrontendCollector
from mlpack.server.frontends import frontend_count
from mlpack.server.sockets import PortInUse, bind_socket, reserve_port
from mlpack.settings import Settings


def test_frontend_count_auto_is_the_usable_cores() -> None:
    assert frontend_count("auto") == len(os.sched_getaffinity(0))
    assert frontend_count(3) == 3


def test_http_workers_from_the_environment() -> None:
    assert Settings.resolve(None, environ={}).http_workers == 1
    os.environ["MLPACK_HTTP_WORKERS"] = "auto"
    try:
        assert Settings.resolve(None).http_workers == "auto"
        os.environ["MLPACK_HTTP_WORKERS"] = "4"
        assert Settings.resolve(None).http_workers == 4
    finally:
        del os.environ["MLPACK_HTTP_WORKERS"]


def test_a_reserved_port_is_shared_by_front_ends_and_refused_to_others() -> None:
    reserved = reserve_port("127.0.0.1", 0, "REST")
    port = reserved.getsockname()[1]
    try:
        peers = [bind_socket("127.0.0.1", port, "REST", reuse_port=True) for _ in range(2)]
        with pytest.raises(PortInUse):
            bind_socket("127.0.0.1", port, "REST")  # another server without SO_REUSEPORT
        for peer in peers:
            peer.close()
    finally:
        reserved.close()


def test_a_port_in_use_cannot_be_reserved() -> None:
    busy = bind_socket("127.0.0.1", 0, "REST", reuse_port=True)
    try:
        with pytest.raises(PortInUse):
            reserve_port("127.0.0.1", busy.getsockname()[1], "REST")
    finally:
        busy.close()


async def test_control_link_calls_both_ways_and_fails_waiters_when_closed() -> None:
    left_sock, right_sock = socket.socketpair()

    async def answer(message: Any) -> Any:
        if isinstance(message, Collect):
            return Snapshot(message.call_id, [("m", "doc", "gauge", [("m", {}, 1.0)])])
        return Done(message.call_id, ModelNotFound(message.name))

    left, right = ControlLink(), ControlLink(handler=answer)
    await left.open(left_sock)
    await right.open(right_sock)
    tasks = [asyncio.create_task(left.run()), asyncio.create_task(right.run())]
    done = await left.call(Apply(left.next_id(), "load", "nosuch"))
    assert isinstance(done.error, ModelNotFound) and done.error.status == 404
    snapshot = await left.call(Collect(left.next_id()))
    assert snapshot.families[0][0] == "m"
    right.close()
    await asyncio.wait_for(left.closed.wait(), 10)
    with pytest.raises(ConnectionError):
        await left.call(Apply(left.next_id(), "load", "x"))
    await asyncio.gather(*tasks)


class _Slot:
    def __init__(self, index: int, families: list[Any], ready: bool = True) -> None:
        self.index, self.families, self.ready, self.restarts = index, families, ready, index


def test_collector_sums_families_and_labels_each_frontend() -> None:
    def rest(count: float) -> Any:
        labels = {"method": "POST", "path": "/infer", "status_code": "200"}
        return (
            "rest_server_requests",
            "REST",
            "counter",
            [("rest_server_requests_total", labels, count)],
        )

    slots = [_Slot(0, [rest(3.0)]), _Slot(1, [rest(4.0)], ready=False)]
    families = {f.name: f for f in FrontendCollector(slots).collect()}
    (sample,) = families["rest_server_requests"].samples
    assert sample.value == 7.0
    per = {s.labels["frontend"]: s.value for s in families["frontend_requests"].samples}
    assert per == {"0": 3.0, "1": 4.0}
    ready = {s.labels["frontend"]: s.value for s in families["frontend_ready"].samples}
    assert ready == {"0": 1.0, "1": 0.0}
