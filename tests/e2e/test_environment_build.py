"""`mlpack start` builds a model's environment from its requirements.txt (no Docker, no packing).

examples/multi-env's two models each name a different tabulate (a tiny pure-Python
package the server lacks) in requirements.txt only; the real package index provides it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.server import REPO, RunningServer, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

EXAMPLE = REPO / "examples" / "multi-env"
BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [7]}]}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        import tabulate  # noqa: F401

        pytest.skip("the server's Python has tabulate: the test needs a package the server lacks")
    except ImportError:
        pass
    root = tmp_path_factory.mktemp("built") / "multi-env"
    shutil.copytree(EXAMPLE, root)
    return root


def _settled(
    server: RunningServer, names: set[str], timeout: float = 400
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    index: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        index = {i["name"]: i for i in httpx.post(server.url + "/v2/repository/index").json()}
        if set(index) >= names and all(
            index[n]["state"] in ("READY", "UNAVAILABLE") for n in names
        ):
            return index
        time.sleep(0.2)
    raise TimeoutError(f"models not settled: {index}\n{server.log()}")


def _infer(server: RunningServer, model: str) -> dict[str, object]:
    response = httpx.post(f"{server.url}/v2/models/{model}/infer", json=BODY, timeout=30)
    assert response.status_code == 200, response.text + server.log()
    return {o["name"]: o["data"][0] for o in response.json()["outputs"]}


def test_start_builds_each_requirements_environment_then_reuses_it(
    folder: Path, tmp_path: Path
) -> None:
    envs = tmp_path / "envs"
    settings = {"environments_dir": str(envs)}
    first = start_server(folder, tmp_path, settings=settings, wait_ready=False)
    try:
        index = _settled(first, {"table-old", "table-new"})
        assert index["table-old"]["state"] == "READY", first.log()
        old, new = _infer(first, "table-old"), _infer(first, "table-new")
    finally:
        first.stop()
    log = first.log()
    assert old["tabulate_version"] == "0.8.10" and new["tabulate_version"] == "0.9.0"
    assert str(old["python"]).startswith(str(envs / "requirements-"))
    # Which environment each model uses is logged, and each was built once.
    assert "model 'table-old' uses environment requirements" in log
    assert "requirements.txt in the model folder" in log
    assert log.count(": building ") == 2, log
    assert "reusing" not in log

    second = start_server(folder, tmp_path, settings=settings, wait_ready=False)
    try:
        index = _settled(second, {"table-old", "table-new"})
        assert index["table-new"]["state"] == "READY", second.log()
        assert _infer(second, "table-new")["tabulate_version"] == "0.9.0"
    finally:
        second.stop()
    assert second.log().count(": reusing ") == 2, second.log()
    assert ": building " not in second.log()


def test_no_build_envs_refuses_with_a_message(folder: Path, tmp_path: Path) -> None:
    settings = {"environments_dir": str(tmp_path / "empty-envs")}
    server = start_server(
        folder, tmp_path, settings=settings, wait_ready=False, args=("--no-build-envs",)
    )
    try:
        index = _settled(server, {"table-old", "table-new"})
    finally:
        server.stop()
    reason = index["table-old"]["reason"]
    assert index["table-old"]["state"] == "UNAVAILABLE"
    assert "--no-build-envs" in reason and "mlpack env pack" in reason, reason
    assert not (tmp_path / "empty-envs").exists() or not any(
        p.name.startswith("requirements-") for p in (tmp_path / "empty-envs").iterdir()
    )
