"""``mlpack.tracing``: nothing imported or done when off; settings resolution; IPC carriage."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from mlpack import tracing
from mlpack.engine.workers.messages import Call, Predict, _to_wire, encode_frame, from_wire
from mlpack.errors import InvalidSettings


def test_serving_without_tracing_imports_no_opentelemetry() -> None:
    code = (
        "import sys, mlpack.server.app, mlpack.engine.workers.worker, mlpack\n"
        "mlpack.tracing.stage('x')\n"
        "print(any(m.startswith('opentelemetry') for m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_stage_is_a_shared_no_op_when_off() -> None:
    assert not tracing.active
    assert tracing.stage("a") is tracing.stage("b")
    with tracing.stage("a") as span:
        assert span is None


def test_endpoint_and_protocol_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_PROTOCOL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    assert tracing.resolve_endpoint(None) is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")
    assert tracing.resolve_endpoint(None) == "collector:4317"
    assert tracing.resolve_endpoint("mine:4317") == "mine:4317"
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.resolve_endpoint("mine:4317") is None
    assert tracing.resolve_protocol(None) == "grpc"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    assert tracing.resolve_protocol(None) == "http/protobuf"
    with pytest.raises(InvalidSettings, match="tracing protocol"):
        tracing.resolve_protocol("carrier-pigeon")


def test_untraced_predict_stays_a_compact_tuple_and_traced_carries_context() -> None:
    plain = Call(7, Predict("m#1", ("id", None, [], None)))
    assert len(_to_wire(plain)) == 5  # tag, call id, key, request, deadline
    carrier = {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    traced = Call(8, Predict("m#1", ("id", None, [], None), trace=carrier))
    wire = _to_wire(traced)
    assert len(wire) == 6
    back = from_wire(pickle.loads(pickle.dumps(wire)))
    assert back.body.trace == carrier and back.call_id == 8
    assert encode_frame(traced)  # frames like any other message


def test_tracer_without_configuration_records_nothing() -> None:
    import mlpack

    with mlpack.tracer().start_as_current_span("work") as span:
        span.set_attribute("k", 1)
