"""End to end: ``mlpack infer`` (a real subprocess) against a real ``mlpack start``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_ports
from tests.helpers.server import ASSETS, REPO, RunningServer, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def infer_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One ``mlpack start`` with echo, iris and the infer test models (jitter, picky, flaky)."""
    folder = tmp_path_factory.mktemp("infer-models")
    shutil.copytree(ASSETS / "infer", folder, dirs_exist_ok=True)
    shutil.copytree(ASSETS / "models" / "echo", folder / "echo")
    iris = folder / "iris"
    iris.mkdir()
    shutil.copy(REPO / "examples" / "iris" / "model-settings.json", iris)
    import runpy

    runpy.run_path(str(REPO / "examples" / "iris" / "train.py"))["train"](iris / "model.joblib")
    server = start_server(folder, tmp_path_factory.mktemp("infer-logs"))
    server.extra["folder"] = folder
    try:
        yield server
    finally:
        server.stop()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPACK_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _command(urls: list[str], model: str, inp: Path, out: Path, *args: str) -> list[str]:
    command = [sys.executable, "-m", "mlpack", "infer", "-m", model, "-i", str(inp), "-o", str(out)]
    for url in urls:
        command += ["-u", url]
    return command + list(args)


def run_infer(
    urls: list[str], model: str, inp: Path, out: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(urls, model, inp, out, *args),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )


def _address(server: RunningServer) -> str:
    return f"127.0.0.1:{server.http_port}"


def write_requests(path: Path, rows: list[list[float]], model_rows: int = 1) -> Path:
    with open(path, "w") as file:
        for row in rows:
            file.write(
                json.dumps(
                    {
                        "inputs": [
                            {
                                "name": "x",
                                "shape": [model_rows, len(row)],
                                "datatype": "FP64",
                                "data": row * model_rows,
                            }
                        ]
                    }
                )
                + "\n"
            )
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def values(count: int) -> list[list[float]]:
    return [[float(i), (i * 7919) % 13 / 10, i / 3] for i in range(count)]


def test_order_kept_under_concurrency_with_varying_latency(
    infer_server: RunningServer, tmp_path: Path
) -> None:
    rows = values(300)
    inp = write_requests(tmp_path / "in.jsonl", rows)
    result = run_infer([_address(infer_server)], "jitter", inp, tmp_path / "out.jsonl", "-w", "16")
    assert result.returncode == 0, result.stderr
    out = read_jsonl(tmp_path / "out.jsonl")
    assert [o["outputs"][0]["data"] for o in out] == rows
    assert [o["id"] for o in out] == [f"line-{i + 1}" for i in range(300)]
    assert "300 ok, 0 failed" in result.stderr
    checkpoint = json.loads((tmp_path / "out.checkpoint.json").read_text())
    assert checkpoint["lines"] == 300 and checkpoint["complete"] is True


def test_given_ids_kept_and_duplicates_do_not_overwrite(
    infer_server: RunningServer, tmp_path: Path
) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text(
        "".join(
            json.dumps(
                {
                    "id": "same",
                    "inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [i]}],
                }
            )
            + "\n"
            for i in range(20)
        )
    )
    result = run_infer([_address(infer_server)], "echo", inp, tmp_path / "out.jsonl", "-w", "8")
    assert result.returncode == 0, result.stderr
    out = read_jsonl(tmp_path / "out.jsonl")
    assert [(o["id"], o["outputs"][0]["data"]) for o in out] == [("same", [i]) for i in range(20)]


def test_micro_batching_gives_the_same_output(infer_server: RunningServer, tmp_path: Path) -> None:
    features = [
        [5.1 + i % 7 * 0.3, 3.5 - i % 5 * 0.2, 1.4 + i % 11 * 0.4, 0.2 + i % 3 * 0.7]
        for i in range(150)
    ]
    inp = write_requests(tmp_path / "in.jsonl", features)
    plain = run_infer([_address(infer_server)], "iris", inp, tmp_path / "plain.jsonl", "-w", "4")
    batched = run_infer(
        [_address(infer_server)], "iris", inp, tmp_path / "batched.jsonl", "-w", "4", "-s", "16"
    )
    assert plain.returncode == 0 and batched.returncode == 0, plain.stderr + batched.stderr
    assert (tmp_path / "plain.jsonl").read_bytes() == (tmp_path / "batched.jsonl").read_bytes()
    assert len(read_jsonl(tmp_path / "batched.jsonl")) == 150


def test_invalid_lines_and_failing_rows_become_error_records(
    infer_server: RunningServer, tmp_path: Path
) -> None:
    lines = []
    for i in range(60):
        value = -1.0 if i in (3, 40) else float(i)
        lines.append(
            json.dumps(
                {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP64", "data": [value]}]}
            )
        )
    lines[10] = "{not json"
    lines[20] = json.dumps(
        {"inputs": [{"name": "x", "shape": [1], "datatype": "FLOAT99", "data": [1]}]}
    )
    lines[30] = ""
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(lines) + "\n")
    for batch in ("1", "8"):
        out = tmp_path / f"out{batch}.jsonl"
        result = run_infer(
            [_address(infer_server)], "picky", inp, out, "-w", "4", "-s", batch, "-r", "1"
        )
        assert result.returncode == 1, result.stderr
        records = read_jsonl(out)
        assert len(records) == 60
        failed = {i for i, r in enumerate(records) if "error" in r}
        assert failed == {3, 10, 20, 30, 40}
        assert records[3]["status"] == 500 and "negative value" in records[3]["error"]
        assert "not valid JSON" in records[10]["error"] and "datatype" in records[20]["error"]
        assert records[11]["outputs"][0]["data"] == [22.0]
        errors = read_jsonl(out.with_name(f"out{batch}.errors.jsonl"))
        assert [e["line"] for e in errors] == [4, 11, 21, 31, 41]
        assert "55 ok, 5 failed" in result.stderr


def test_overloaded_server_503_every_row_completes(
    infer_server: RunningServer, tmp_path: Path
) -> None:
    rows = values(120)
    inp = write_requests(tmp_path / "in.jsonl", rows)
    result = run_infer(
        [_address(infer_server)],
        "flaky",
        inp,
        tmp_path / "out.jsonl",
        "-w",
        "4",
        "-r",
        "12",
        "--batch-interval",
        "0.01",
    )
    assert result.returncode == 0, result.stderr
    assert [o["outputs"][0]["data"] for o in read_jsonl(tmp_path / "out.jsonl")] == rows
    retries = int(result.stderr.split(" retries")[0].rsplit(" ", 1)[-1])
    assert retries > 0


def test_two_urls_one_dead(infer_server: RunningServer, tmp_path: Path) -> None:
    (dead_port,) = free_ports(1)
    rows = values(100)
    inp = write_requests(tmp_path / "in.jsonl", rows)
    result = run_infer(
        [f"127.0.0.1:{dead_port}", _address(infer_server)],
        "echo",
        inp,
        tmp_path / "out.jsonl",
        "-w",
        "4",
        "-r",
        "3",
    )
    assert result.returncode == 0, result.stderr
    assert [o["outputs"][0]["data"] for o in read_jsonl(tmp_path / "out.jsonl")] == rows


def _wait_for_lines(
    path: Path, count: int, process: subprocess.Popen[str], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        if process.poll() is not None:
            raise AssertionError(f"infer exited early: {process.returncode}")
        time.sleep(0.02)
    raise AssertionError(f"{path} never reached {count} lines")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_stop_mid_job_then_resume_gives_exactly_the_full_output(
    infer_server: RunningServer, tmp_path: Path, sig: int
) -> None:
    rows = values(600)
    inp = write_requests(tmp_path / "in.jsonl", rows)
    reference = tmp_path / "reference.jsonl"
    assert run_infer([_address(infer_server)], "jitter", inp, reference, "-w", "8").returncode == 0
    out = tmp_path / "out.jsonl"
    process = subprocess.Popen(
        _command([_address(infer_server)], "jitter", inp, out, "-w", "2"),
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for_lines(out, 100, process)
        os.killpg(process.pid, sig)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    written = out.read_bytes().count(b"\n")
    assert 100 <= written < 600
    if sig == signal.SIGINT:
        assert process.returncode == 130 and "--resume" in stderr
    # Without --resume an unfinished job is protected.
    refused = run_infer([_address(infer_server)], "jitter", inp, out)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = run_infer([_address(infer_server)], "jitter", inp, out, "-w", "8", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert out.read_bytes() == reference.read_bytes()


def test_resume_cuts_a_partial_trailing_line(infer_server: RunningServer, tmp_path: Path) -> None:
    rows = values(50)
    inp = write_requests(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    assert run_infer([_address(infer_server)], "echo", inp, out).returncode == 0
    reference = out.read_bytes()
    lines = reference.splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:20]) + lines[20][:15])  # a crash mid-write, stale checkpoint
    (tmp_path / "out.checkpoint.json").write_text(
        json.dumps(
            {"input": str(inp.resolve()), "lines": 10, "output_bytes": len(b"".join(lines[:10]))}
        )
    )
    resumed = run_infer([_address(infer_server)], "echo", inp, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert out.read_bytes() == reference
    assert "30 ok" in resumed.stderr and "20 lines from before (0 failed)" in resumed.stderr


def test_server_restarted_mid_job(infer_server: RunningServer, tmp_path: Path) -> None:
    """A server stopped and started again on the same port during a job, with the default
    retry settings: every line is answered, none becomes an error record."""
    folder = tmp_path / "models"
    shutil.copytree(ASSETS / "infer" / "jitter", folder / "jitter")
    server = start_server(folder, tmp_path)
    rows = values(400)
    inp = write_requests(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    process = subprocess.Popen(
        _command([_address(server)], "jitter", inp, out, "-w", "2", "-vv", "--no-progress"),
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    retried = threading.Event()
    lines: list[str] = []

    def read_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if " retry " in line:
                retried.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    restarted: RunningServer | None = None
    try:
        _wait_for_lines(out, 50, process)
        server.stop(signal.SIGKILL)
        # The job has seen the outage (a retry is logged) before the server comes back.
        assert retried.wait(120), "".join(lines)
        restarted = _start_on(folder, tmp_path, server)
        process.wait(timeout=300)
        reader.join(30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        server.stop(signal.SIGKILL)
        if restarted is not None:
            restarted.stop(signal.SIGKILL)
        reader.join(30)
        if process.stderr is not None:
            process.stderr.close()
    stderr = "".join(lines)
    assert process.returncode == 0, stderr
    records = read_jsonl(out)
    assert not [r for r in records if "error" in r]
    assert [o["outputs"][0]["data"] for o in records] == rows
    assert (tmp_path / "out.errors.jsonl").read_bytes() == b""


def _start_on(folder: Path, log_dir: Path, previous: RunningServer) -> RunningServer:
    """Start a server on ``previous``'s ports."""
    import tests.helpers.server as helpers

    original = helpers.free_ports
    helpers.free_ports = lambda count: [
        previous.http_port,
        previous.grpc_port,
        previous.metrics_port,
    ]  # type: ignore[assignment]
    try:
        return start_server(folder, log_dir)
    finally:
        helpers.free_ports = original  # type: ignore[assignment]


def test_grpc_transport_gives_the_same_output_as_rest(
    infer_server: RunningServer, tmp_path: Path
) -> None:
    rows = values(80)
    inp = write_requests(tmp_path / "in.jsonl", rows)
    rest = run_infer([_address(infer_server)], "echo", inp, tmp_path / "rest.jsonl", "-s", "8")
    grpc_run = run_infer(
        [infer_server.grpc_address], "echo", inp, tmp_path / "grpc.jsonl", "-s", "8", "-t", "grpc"
    )
    assert rest.returncode == 0 and grpc_run.returncode == 0, rest.stderr + grpc_run.stderr
    assert (tmp_path / "rest.jsonl").read_bytes() == (tmp_path / "grpc.jsonl").read_bytes()


def test_binary_data_gives_the_same_output_as_json(
    infer_server: RunningServer, tmp_path: Path
) -> None:
    rows = values(60)
    inp = write_requests(tmp_path / "in.jsonl", rows)
    plain = run_infer([_address(infer_server)], "echo", inp, tmp_path / "json.jsonl", "-s", "4")
    binary = run_infer(
        [_address(infer_server)], "echo", inp, tmp_path / "bin.jsonl", "-s", "4", "-b"
    )
    assert plain.returncode == 0 and binary.returncode == 0, plain.stderr + binary.stderr
    assert (tmp_path / "json.jsonl").read_bytes() == (tmp_path / "bin.jsonl").read_bytes()


def _gate_calls(server: RunningServer) -> int:
    """Server-side count of the gate model's inferences (successes and failures)."""
    import httpx

    stats = httpx.get(f"{server.url}/v2/models/gate/stats", timeout=10).json()["model_stats"][0]
    return int(
        stats["inference_stats"]["success"]["count"] + stats["inference_stats"]["fail"]["count"]
    )


def test_resume_fails_while_error_records_remain_and_retry_failed_fixes_them_in_place(
    infer_server: RunningServer, tmp_path: Path
) -> None:
    refuse = infer_server.extra["folder"] / "gate" / "refuse.json"
    rows = values(40)
    inp = write_requests(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    reference = tmp_path / "reference.jsonl"
    assert run_infer([_address(infer_server)], "gate", inp, reference, "-w", "4").returncode == 0
    refuse.write_text(json.dumps([5.0, 17.0, 33.0]))
    try:
        first = run_infer([_address(infer_server)], "gate", inp, out, "-w", "4", "-r", "0")
        assert first.returncode == 1, first.stderr
        assert [i for i, r in enumerate(read_jsonl(out)) if "error" in r] == [5, 17, 33]
        # Resuming a job whose output holds error records does not pass for success.
        resumed = run_infer([_address(infer_server)], "gate", inp, out, "--resume")
        assert resumed.returncode == 1, resumed.stderr
        assert "0 lines: 0 ok, 0 failed" in resumed.stderr
        assert "40 lines from before (3 failed)" in resumed.stderr
        assert "--retry-failed" in resumed.stderr
        # Still refused: the retry rewrites nothing it could not answer.
        still = run_infer([_address(infer_server)], "gate", inp, out, "--retry-failed", "-r", "0")
        assert still.returncode == 1 and "3 lines: 0 ok, 3 failed" in still.stderr, still.stderr
    finally:
        refuse.unlink(missing_ok=True)
    calls = _gate_calls(infer_server)
    fixed = run_infer([_address(infer_server)], "gate", inp, out, "--retry-failed", "-w", "2")
    assert fixed.returncode == 0, fixed.stderr
    assert _gate_calls(infer_server) - calls == 3  # only the failed lines were sent again
    assert out.read_bytes() == reference.read_bytes()
    assert (tmp_path / "out.errors.jsonl").read_bytes() == b""
    again = run_infer([_address(infer_server)], "gate", inp, out, "--resume")
    assert again.returncode == 0, again.stderr


def test_retry_failed_needs_a_finished_job(infer_server: RunningServer, tmp_path: Path) -> None:
    inp = write_requests(tmp_path / "in.jsonl", values(5))
    result = run_infer(
        [_address(infer_server)], "gate", inp, tmp_path / "none.jsonl", "--retry-failed"
    )
    assert result.returncode == 2 and "no earlier job" in result.stderr
    both = run_infer(
        [_address(infer_server)], "gate", inp, tmp_path / "x.jsonl", "--retry-failed", "--resume"
    )
    assert both.returncode == 2 and "cannot be combined" in both.stderr


def test_grpc_unencodable_lines_become_error_records_like_rest(
    infer_server: RunningServer, tmp_path: Path
) -> None:
    rows = values(30)
    inp = write_requests(tmp_path / "in.jsonl", rows)
    lines = inp.read_text().splitlines()
    bad = {
        4: {"name": "x", "shape": [2], "datatype": "FP64", "data": [1.0]},
        12: {"name": "x", "shape": [1], "datatype": "INT8", "data": [1000]},
        20: {"name": "x", "shape": [1], "datatype": "FP64", "data": ["text"]},
    }
    for index, tensor in bad.items():
        lines[index] = json.dumps({"inputs": [tensor]})
    inp.write_text("\n".join(lines) + "\n")
    for transport, address in (
        ("rest", _address(infer_server)),
        ("grpc", infer_server.grpc_address),
    ):
        out = tmp_path / f"{transport}.jsonl"
        result = run_infer([address], "echo", inp, out, "-t", transport, "-s", "4")
        assert result.returncode == 1, result.stderr
        records = read_jsonl(out)
        assert len(records) == 30
        assert [i for i, r in enumerate(records) if "error" in r] == sorted(bad), transport
        assert records[4]["status"] == 400 and records[4]["line"] == 5
        assert [r["outputs"][0]["data"] for i, r in enumerate(records) if i not in bad] == [
            row for i, row in enumerate(rows) if i not in bad
        ]
        # The job is finished: resuming it does not stop at the bad line again.
        resumed = run_infer([address], "echo", inp, out, "-t", transport, "--resume")
        assert resumed.returncode == 1 and "30 lines from before (3 failed)" in resumed.stderr


def test_summary_counts_lines_and_rows_apart(infer_server: RunningServer, tmp_path: Path) -> None:
    inp = write_requests(tmp_path / "in.jsonl", values(20), model_rows=3)
    result = run_infer([_address(infer_server)], "echo", inp, tmp_path / "out.jsonl")
    assert result.returncode == 0, result.stderr
    assert "20 lines: 20 ok, 0 failed" in result.stderr and "60 rows" in result.stderr
    assert "lines/s" in result.stderr and "rows/s" in result.stderr
