"""examples/batch-infer: train.py, make_requests.py, mlpack start, mlpack infer, check.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.server import REPO, RunningServer, checkout_pythonpath, start_server

pytestmark = pytest.mark.e2e
EXAMPLE = REPO / "examples" / "batch-infer"


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "PYTHONPATH": checkout_pythonpath(os.environ.get("PYTHONPATH", "")),
    }
    result = subprocess.run(
        command, check=False, cwd=cwd, env=environment, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, RunningServer]]:
    """Example after `python train.py`, `python make_requests.py -n 20`, `mlpack start model`."""
    folder = shutil.copytree(
        EXAMPLE,
        tmp_path_factory.mktemp("example") / "batch-infer",
        ignore=shutil.ignore_patterns("*.joblib", "*.jsonl"),
    )
    _run([sys.executable, "train.py"], folder)
    _run([sys.executable, "make_requests.py", "-n", "20"], folder)
    server = start_server(folder / "model", tmp_path_factory.mktemp("logs"))
    yield folder, server
    server.stop()


def test_requests_file_is_served_and_checked(example: tuple[Path, RunningServer]) -> None:
    """Each line of requests.jsonl is a valid request; check.py takes the answers, sees a gap."""
    folder, server = example
    responses = folder / "by-hand.jsonl"
    with httpx.Client(base_url=server.url, timeout=30) as client, responses.open("w") as out:
        for line in (folder / "requests.jsonl").read_text().splitlines():
            response = client.post(
                "/v2/models/iris/infer", content=line, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 200, response.text
            out.write(json.dumps(response.json()) + "\n")
    _run([sys.executable, "check.py", "--responses", str(responses)], folder)
    lines = responses.read_text().splitlines()
    responses.write_text("\n".join(lines[:-1]) + "\n")
    failed = subprocess.run(
        [sys.executable, "check.py", "--responses", str(responses)],
        check=False,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1 and "20 requests but 19 responses" in failed.stderr


def test_mlpack_infer_job(example: tuple[Path, RunningServer]) -> None:
    folder, server = example
    _run(
        [
            sys.executable,
            "-m",
            "mlpack",
            "infer",
            "-u",
            f"127.0.0.1:{server.http_port}",
            "-m",
            "iris",
            "-i",
            "requests.jsonl",
            "-o",
            "responses.jsonl",
            "-w",
            "8",
        ],
        folder,
    )
    assert (
        "all 20 responses present, in order and correct"
        in _run([sys.executable, "check.py"], folder).stdout
    )
