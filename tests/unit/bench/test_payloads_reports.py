"""Request generation, per-transport encoding, report documents, charts and experiment files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlpack.bench import charts, report
from mlpack.bench.experiment import ExperimentError, load_experiment
from mlpack.bench.html import render_html
from mlpack.bench.payloads import (
    PayloadError,
    encode,
    generate_requests,
    parse_shapes,
    rows_of,
    specs_from_metadata,
)
from mlpack.client.binary import HEADER_LENGTH

METADATA = {
    "name": "m",
    "inputs": [
        {"name": "x", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "s", "datatype": "BYTES", "shape": [-1]},
    ],
}


def test_generated_requests_follow_metadata_and_rows() -> None:
    specs = specs_from_metadata(METADATA)
    requests = generate_requests(specs, rows=5, count=3)
    assert len(requests) == 3 and requests[0] != requests[1]  # distinct bodies
    x, s = requests[0]["inputs"]
    assert x["shape"] == [5, 3] and len(x["data"]) == 15 and x["datatype"] == "FP32"
    assert s["shape"] == [5] and all(isinstance(v, str) for v in s["data"])
    assert rows_of(requests[0]) == 5


def test_shapes_fill_unknown_dimensions() -> None:
    metadata = {"name": "m", "inputs": [{"name": "img", "datatype": "UINT8", "shape": [-1, -1, 3]}]}
    with pytest.raises(PayloadError, match="--shape img=-1,N"):
        specs_from_metadata(metadata)
    specs = specs_from_metadata(metadata, parse_shapes(["img=-1,4,3"]))
    assert specs[0].shape == (-1, 4, 3)
    with pytest.raises(PayloadError, match="does not declare"):
        specs_from_metadata(metadata, parse_shapes(["img=-1,4,3", "other=2"]))
    with pytest.raises(PayloadError, match="NAME=D1"):
        parse_shapes(["img"])
    with pytest.raises(PayloadError, match="declares no inputs"):
        specs_from_metadata({"name": "bare", "inputs": []})


def test_each_transport_encodes_the_same_request() -> None:
    request = generate_requests(specs_from_metadata(METADATA), rows=2, count=1)[0]
    rest = encode(request, "rest", "m")
    assert json.loads(rest.data) == request and rest.rows == 2 and rest.headers == ()
    binary = encode(request, "rest-binary", "m")
    ((name, length),) = binary.headers
    assert name == HEADER_LENGTH
    header = json.loads(binary.data[: int(length)])
    assert header["inputs"][0]["parameters"]["binary_data_size"] == 2 * 3 * 4
    grpc = encode(request, "grpc", "m", "v1")
    from mlpack.proto import inference_pb2 as pb

    message = pb.ModelInferRequest.FromString(grpc.data)
    assert message.model_name == "m" and message.model_version == "v1"
    assert [list(t.shape) for t in message.inputs] == [[2, 3], [2]]
    with pytest.raises(PayloadError, match="unknown transport"):
        encode(request, "smoke-signals", "m")


def _result(transport: str, c: int, rps: float, server: dict[str, Any] | None) -> dict[str, Any]:
    client = {
        "rps": rps,
        "rows_per_s": rps,
        "p50_ms": 1.0,
        "p90_ms": 2.0,
        "p95_ms": 2.5,
        "p99_ms": 3.0 + c,
        "max_ms": 9.0,
        "errors": 0,
        "error_kinds": {},
        "requests": 10,
    }
    config = {"transport": transport, "concurrency": c, "rows": 1, "rate": None, "server": {}}
    return {"label": "x", "config": config, "client": client, "server": server, "process": None}


def test_markdown_html_and_compare() -> None:
    split = {
        "requests": 10,
        "failures": 0,
        "executions": 5,
        "avg_batch": 2.0,
        "queue_ms": 0.5,
        "compute_ms": 1.5,
    }
    a = report.make_document([_result("rest", 1, 100, split), _result("grpc", 1, 50, None)], "A")
    b = report.make_document([_result("rest", 1, 150, split)], "B")
    table = report.markdown_table(a)
    assert "| rest rows=1 | c=1 | 100 |" in table and "| 0.50 | 1.50 | 2.0 | 0 |" in table
    assert "| - | - | - |" in table  # no server stats for the gRPC row
    text, rows = report.compare(a, b)
    assert rows[0]["rps"] == pytest.approx(1.5) and "1.50x" in text
    with pytest.raises(report.ReportError, match="share no configuration"):
        report.compare(a, report.make_document([_result("grpc", 8, 1, None)], "C"))
    html = render_html(a)
    assert html.count("<svg") == 3 and 'class="series"' in html and 'class="bar"' in html


def test_read_json_refuses_other_files(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"hello": 1}')
    with pytest.raises(report.ReportError, match="not an mlpack bench results file"):
        report.read_json(tmp_path / "x.json")
    with pytest.raises(report.ReportError, match="cannot read"):
        report.read_json(tmp_path / "missing.json")


def test_charts_handle_empty_and_single_points() -> None:
    assert "no data" in charts.line_chart("t", [], "x", "y")
    svg = charts.line_chart("t", [("only", [(5.0, 2.0)])], "x", "y")
    assert svg.startswith("<svg") and "<circle" in svg
    assert "no data" in charts.stacked_bars("t", [], ["a"], "ms")


def test_experiment_files_merge_and_validate(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "model: m\ntarget: {url: 'localhost:8080'}\nduration: 3\n"
        "matrix: {concurrency: [1, 2], transport: [rest]}\n"
    )
    (tmp_path / "over.yaml").write_text("extends: base.yaml\nmatrix: {transport: [grpc]}\n")
    spec = load_experiment([tmp_path / "over.yaml"])
    assert spec.duration == 3 and spec.matrix.concurrency == [1, 2]
    assert spec.matrix.transport == ["grpc"]
    (tmp_path / "cross.yaml").write_text(
        "model: m\nfolder: .\nmatrix:\n"
        "  server: {max_batch_size: [1, 8], parallel_workers: [0, 2]}\n"
    )
    assert len(load_experiment([tmp_path / "cross.yaml"]).matrix.server_sets()) == 4
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(ExperimentError, match="nests more than"):
        load_experiment([tmp_path / "loop.yaml"])
    (tmp_path / "neg.yaml").write_text("model: m\ntarget: {url: x}\nmatrix: {rows: [0]}\n")
    with pytest.raises(ExperimentError, match=r"matrix\.rows"):
        load_experiment([tmp_path / "neg.yaml"])
