"""Payload logging: settings validation, the bounded queue, CloudEvents shapes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlpack.server.payload_log import Event, PayloadLogger
from mlpack.settings import ModelSettings, PayloadLogSettings
from mlpack.types import InferenceRequest, InferenceResponse


def test_exactly_one_destination() -> None:
    with pytest.raises(ValidationError, match="exactly one of 'path' or 'url'"):
        PayloadLogSettings()
    with pytest.raises(ValidationError, match="exactly one of 'path' or 'url'"):
        PayloadLogSettings(path="a.jsonl", url="http://127.0.0.1:1/")
    with pytest.raises(ValidationError):
        PayloadLogSettings(path="a.jsonl", sample_rate=1.5)


def test_structured_event_is_one_json_object() -> None:
    event = Event("id-1", "t", "src", "2026-01-01T00:00:00.000+00:00", "m", b'{"a":[1,2]}')
    parsed = json.loads(event.structured())
    assert parsed["id"] == "id-1" and parsed["data"] == {"a": [1, 2]}
    assert event.headers()["ce-id"] == "id-1"


def test_full_queue_drops_instead_of_blocking(tmp_path: Path) -> None:
    # A path whose parent is a file: the writer thread cannot open it and discards.
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings = ModelSettings(
        name="m", payload_log={"path": str(blocker / "x.jsonl"), "max_queue": 1, "mode": "request"}
    )
    sink = PayloadLogger()
    request = InferenceRequest.model_validate(
        {"id": "r", "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
    )
    response = InferenceResponse(model_name="m", outputs=[])
    for _ in range(50):
        sink.record(settings, request, response)  # returns at once, whatever the writer does
    deadline = time.monotonic() + 10
    while sink.stats("m")["dropped"] < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.stats("m") == {"written": 0, "dropped": 50, "failed": 0}
    sink.close()
    # The drops are a metric a dashboard can alert on, and closing does not reset them.
    (family,) = sink.collect()
    exported = {s.labels["outcome"]: s.value for s in family.samples if s.name.endswith("_total")}
    assert exported == {"written": 0, "dropped": 50, "failed": 0}
    assert {s.labels["model_name"] for s in family.samples} == {"m"}


def test_sample_rate_zero_logs_nothing(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    settings = ModelSettings(name="m", payload_log={"path": str(path), "sample_rate": 0.0})
    sink = PayloadLogger()
    request = InferenceRequest.model_validate(
        {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
    )
    sink.record(settings, request, InferenceResponse(model_name="m", outputs=[]))
    sink.close()
    assert not path.exists()
