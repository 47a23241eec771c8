"""Serving info is data from the engine; the transports turn it into headers."""

from __future__ import annotations

from mlpack.engine.batching import ServingInfo
from mlpack.server.headers import outgoing_headers
from mlpack.types import InferenceResponse, Parameters


def test_serving_info_travels_as_parameters_and_becomes_headers_at_the_transport() -> None:
    response = InferenceResponse(model_name="m", outputs=[], parameters={"headers": {"x-own": "1"}})
    ServingInfo(batch_size=6, batch_requests=3, queue_wait=0.0021).attach(response)
    parameters = response.parameters
    assert parameters is not None
    extra = parameters.model_extra or {}
    assert (extra["batch_size"], extra["batch_requests"], extra["queue_wait_ms"]) == (6, 3, 2.1)
    assert parameters.headers == {"x-own": "1"}  # the engine wrote no header names
    assert outgoing_headers(parameters) == {
        "x-own": "1",
        "x-mlpack-batch-size": "6",
        "x-mlpack-batch-requests": "3",
        "x-mlpack-queue-wait-ms": "2.1",
    }
    assert parameters.headers is None  # headers leave the body


def test_no_headers_means_none() -> None:
    assert outgoing_headers(Parameters(content_type="np")) is None
