"""The quick start talks: once every model is READY, `mlpack start` prints a working curl."""

from __future__ import annotations

import json
import runpy
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.server import REPO, start_server

pytestmark = pytest.mark.e2e


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_ready_line_appears_once_ready_and_its_curl_answers(tmp_path: Path) -> None:
    folder = tmp_path / "my models" / "iris"
    folder.mkdir(parents=True)
    for name in ("model-settings.json", "request.json"):
        shutil.copy(REPO / "examples" / "iris" / name, folder)
    runpy.run_path(str(REPO / "examples" / "iris" / "train.py"))["train"](folder / "model.joblib")
    server = start_server(folder, tmp_path, wait_ready=True)
    try:
        deadline = time.monotonic() + 60
        while "ready (" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = server.log()
        ready_lines = [line for line in log.splitlines() if "ready (" in line]
        assert len(ready_lines) == 1, log
        assert log.index("READY") < log.index("ready (")  # after the banner shows the state
        command = ready_lines[0].split("try  ", 1)[1]
        assert command.startswith(f"curl -s 127.0.0.1:{server.http_port}/v2/models/iris/infer")
        # Run it as printed, from the server's working directory (a path with a space).
        result = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        answer = json.loads(result.stdout)
        assert answer["outputs"][0]["data"] == [0], result.stdout + result.stderr
    finally:
        server.stop()
