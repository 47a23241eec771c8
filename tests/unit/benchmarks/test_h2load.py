"""Parsing for the h2load gRPC load generator (``benchmarks/h2load.py``)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from benchmarks import h2load

SUMMARY = """
finished in 6.01s, 1801.00 req/s, 247.02KB/s
requests: 9005 total, 9037 started, 9005 done, 9000 succeeded, 5 failed, 1 errored, 2 timeout
status codes: 9000 2xx, 0 3xx, 3 4xx, 2 5xx
traffic: 1.21MB (1264746) total, 33.64KB (34446) headers (space savings 96.02%)
"""

METRICS = """
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="OK",grpc_method="ModelInfer",frontend="0"} 10.0
grpc_server_handled_total{grpc_code="OK",grpc_method="ModelInfer",frontend="1"} 5.0
grpc_server_handled_total{grpc_code="CANCELLED",grpc_method="ModelInfer",frontend="0"} 2.0
grpc_server_handled_total{grpc_code="OK",grpc_method="ServerLive",frontend="0"} 7.0
grpc_server_handled_total{grpc_type="UNARY",grpc_service="inference.GRPCInferenceService",\
grpc_method="ModelInfer",grpc_code="NOT_FOUND"} 3.0
grpc_server_started_total{grpc_method="ModelInfer"} 20.0
"""


def test_frame_is_grpc_length_prefixed() -> None:
    framed = h2load.frame(b"abc")
    assert framed[0] == 0 and struct.unpack(">I", framed[1:5]) == (3,) and framed[5:] == b"abc"


def test_summary_counts() -> None:
    parsed = h2load.parse_output(SUMMARY)
    assert parsed["rps"] == 1801.0 and parsed["done"] == 9005
    assert (parsed["failed"], parsed["errored"], parsed["timeout"]) == (5, 1, 2)
    assert parsed["non_2xx"] == 5 and parsed["not_done"] == 32


def test_summary_in_milliseconds() -> None:
    text = SUMMARY.replace("finished in 6.01s", "finished in 701.30ms")
    assert h2load.parse_output(text)["seconds"] == pytest.approx(0.7013)


def test_handled_counts_sum_over_front_ends_and_ignore_other_methods() -> None:
    counts = h2load.parse_handled(METRICS)
    assert counts == {"OK": 15.0, "CANCELLED": 2.0, "NOT_FOUND": 3.0}


def test_latencies_keep_answered_requests(tmp_path: Path) -> None:
    log = tmp_path / "log.tsv"
    log.write_text("1700000000000000\t200\t1500\n1700000000000100\t-1\t90\n1\t200\t2500\n")
    assert h2load.latencies_ms(log) == [1.5, 2.5]
