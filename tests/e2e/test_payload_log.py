"""Payload logging end to end: a real server writing CloudEvents to a file and POSTing
them to a real HTTP receiver the test runs (KServe's logger format)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.server import ASSETS, start_server

pytestmark = pytest.mark.e2e


def _model(tmp: Path, payload_log: dict[str, Any]) -> Path:
    folder = tmp / "models"
    shutil.copytree(ASSETS / "operability" / "logged", folder / "logged")
    settings = {"name": "logged", "implementation": "models.EchoModel", "payload_log": payload_log}
    (folder / "logged" / "model-settings.json").write_text(json.dumps(settings))
    return folder


def _request(value: float, request_id: str) -> dict[str, Any]:
    inputs = [{"name": "x", "shape": [1], "datatype": "FP32", "data": [value]}]
    return {"id": request_id, "inputs": inputs}


def _wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_payloads_to_a_json_lines_file(tmp_path: Path) -> None:
    log_file = tmp_path / "payloads.jsonl"
    running = start_server(_model(tmp_path, {"path": str(log_file)}), tmp_path)
    try:
        for index in range(3):
            answer = httpx.post(
                running.url + "/v2/models/logged/infer", json=_request(index, f"p-{index}")
            )
            assert answer.status_code == 200
        _wait(lambda: log_file.exists() and len(log_file.read_text().splitlines()) == 6, "6 lines")
    finally:
        running.stop()
    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [e["type"].rsplit(".", 1)[1] for e in events] == ["request", "response"] * 3
    for index in range(3):
        request, response = events[2 * index], events[2 * index + 1]
        assert request["id"] == response["id"] == f"p-{index}"
        assert request["specversion"] == "1.0" and request["inferenceservicename"] == "logged"
        assert request["data"]["inputs"][0]["data"] == [index]
        assert response["data"]["outputs"][0]["data"] == [index]
        assert response["data"]["model_name"] == "logged"


class _Receiver:
    """A real HTTP endpoint collecting binary-mode CloudEvents."""

    def __init__(self, fail_first: int = 0) -> None:
        self.events: list[tuple[dict[str, str], Any]] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    if receiver.fail_first > 0:
                        receiver.fail_first -= 1
                        status = 503
                    else:
                        status = 202
                        headers = {k.lower(): v for k, v in self.headers.items()}
                        receiver.events.append((headers, json.loads(body)))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/events"


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    found = _Receiver(fail_first=1)
    found.thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


def test_payloads_posted_as_cloudevents(tmp_path: Path, receiver: _Receiver) -> None:
    running = start_server(_model(tmp_path, {"url": receiver.url}), tmp_path)
    try:
        for index in range(3):
            answer = httpx.post(
                running.url + "/v2/models/logged/infer", json=_request(index, f"c-{index}")
            )
            assert answer.status_code == 200  # the receiver's first 503 costs the client nothing
        _wait(lambda: len(receiver.events) == 5, "5 events (the first POST was refused)")
    finally:
        running.stop()
    kinds = [(h["ce-id"], h["ce-type"].rsplit(".", 1)[1]) for h, _ in receiver.events]
    assert kinds == [
        ("c-0", "response"), ("c-1", "request"), ("c-1", "response"),
        ("c-2", "request"), ("c-2", "response"),
    ]  # fmt: skip
    headers, body = receiver.events[0]
    assert headers["ce-specversion"] == "1.0" and headers["ce-inferenceservicename"] == "logged"
    assert headers["content-type"] == "application/json"
    assert body["outputs"][0]["data"] == [0]
    assert "payload log: POST" in running.log() and "503" in running.log()


def test_unreachable_url_never_fails_requests(tmp_path: Path) -> None:
    from tests.conftest import free_ports

    (port,) = free_ports(1)
    payload_log = {"url": f"http://127.0.0.1:{port}/nobody", "max_queue": 2, "timeout": 0.5}
    running = start_server(_model(tmp_path, payload_log), tmp_path)
    try:
        for index in range(20):
            answer = httpx.post(
                running.url + "/v2/models/logged/infer", json=_request(index, f"u-{index}")
            )
            assert answer.status_code == 200
        _wait(lambda: "payload log" in running.log(), "a payload log warning")
        # Every event is accounted for on the metrics port: none written, the rest dropped
        # (queue full) or failed (refused connection).
        _wait(lambda: sum(_outcomes(running).values()) == 40, "40 events counted")
        outcomes = _outcomes(running)
        assert outcomes["written"] == 0 and outcomes["failed"] > 0
    finally:
        running.stop()


def _outcomes(running: Any) -> dict[str, float]:
    """``payload_log_events_total`` for the model 'logged', by outcome, from a scrape."""
    text = httpx.get(f"http://127.0.0.1:{running.metrics_port}/metrics").text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("payload_log_events_total{") and 'model_name="logged"' in line:
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            found[outcome] = float(line.rsplit(" ", 1)[1])
    return found
