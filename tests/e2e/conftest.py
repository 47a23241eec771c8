from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.server import ASSETS, REPO, RunningServer, start_server


@pytest.fixture(scope="session")
def models_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the test models plus a freshly trained iris model."""
    folder = tmp_path_factory.mktemp("models")
    shutil.copytree(ASSETS / "models", folder, dirs_exist_ok=True)
    iris = folder / "iris"
    iris.mkdir()
    shutil.copy(REPO / "examples" / "iris" / "model-settings.json", iris)
    import runpy

    runpy.run_path(str(REPO / "examples" / "iris" / "train.py"))["train"](iris / "model.joblib")
    return folder


@pytest.fixture(scope="module")
def server(
    models_folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One ``mlpack start`` serving every test model (``broken`` never becomes ready)."""
    running = start_server(models_folder, tmp_path_factory.mktemp("logs"), wait_ready=False)
    import time

    import httpx

    # Ready stays false (the broken model): wait until the others are loaded instead.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        index = httpx.post(running.url + "/v2/repository/index").json()
        if all(item["state"] != "LOADING" for item in index) and any(
            item["state"] == "READY" for item in index
        ):
            break
        time.sleep(0.05)
    yield running
    running.stop()
