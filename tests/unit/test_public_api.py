from __future__ import annotations

import subprocess
import sys

import mlpack


def test_every_public_name_resolves() -> None:
    for name in mlpack.__all__:
        assert getattr(mlpack, name) is not None


def test_import_does_no_heavy_work() -> None:
    heavy = ("numpy", "pydantic", "grpc", "docker")
    code = f"import sys, mlpack; print(any(m in sys.modules for m in {heavy!r}))"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "False"
