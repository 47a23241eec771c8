"""Run ``mlpack bench`` / ``mlpack tune`` as a user would: a subprocess of this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.server import checkout_pythonpath


def run_mlpack(
    command: str, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": checkout_pythonpath(os.environ.get("PYTHONPATH", ""))}
    extra = ["--no-progress"] if command == "bench" else []
    return subprocess.run(
        [sys.executable, "-m", "mlpack", command, *extra, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=cwd,
    )


def run_bench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_mlpack("bench", *args, cwd=cwd)
