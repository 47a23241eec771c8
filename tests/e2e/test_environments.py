"""Serve-time environments, no Docker: a packed environment provides what the server lacks."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.server import REPO, RunningServer, start_server

pytestmark = pytest.mark.e2e

EXAMPLE = REPO / "examples" / "multi-env"


def _mlpack(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "runtimes" / "sklearn")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "mlpack", *args], capture_output=True, text=True, env=environment
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example with table_old packed (`mlpack env pack`) and named as environment_tarball,
    plus a model whose tarball tries to escape its folder."""
    pytest.importorskip("httpx")
    try:
        import tabulate  # noqa: F401

        pytest.skip("the server's Python has tabulate: the test needs a package the server lacks")
    except ImportError:
        pass
    root = tmp_path_factory.mktemp("served")
    shutil.copytree(EXAMPLE / "table_old", root / "table_old")
    result = _mlpack(
        "env", "pack", str(root / "table_old"), "-o", str(root / "table_old" / "env.tar.gz")
    )
    assert result.returncode == 0, result.stderr
    assert "packed" in result.stdout
    settings = root / "table_old" / "model-settings.json"
    values = json.loads(settings.read_text())
    values["parameters"] = {"environment_tarball": "env.tar.gz"}
    settings.write_text(json.dumps(values))

    evil = root / "evil"
    shutil.copytree(EXAMPLE / "table_new", evil)
    (evil / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "evil",
                "implementation": "models.TableModel",
                "parameters": {"environment_tarball": "env.tar.gz"},
            }
        )
    )
    with tarfile.open(evil / "env.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"bad"))
    return root


@pytest.fixture(scope="module", params=[0, 2], ids=["workers-0", "workers-2"])
def server(
    folder: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RunningServer]:
    """parallel_workers 0 and 2: either way an environment gets its own worker processes."""
    running = start_server(
        folder,
        tmp_path_factory.mktemp("logs"),
        wait_ready=False,
        args=("--parallel-workers", str(request.param)),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        index = httpx.post(running.url + "/v2/repository/index").json()
        if len(index) == 2 and all(
            item["state"] not in ("LOADING", "UNAVAILABLE") or item["reason"] for item in index
        ):
            break
        time.sleep(0.1)
    yield running
    running.stop()


def test_packed_environment_provides_a_package_the_server_lacks(
    server: RunningServer, folder: Path
) -> None:
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [7]}]}
    response = httpx.post(server.url + "/v2/models/table-old/infer", json=body, timeout=30)
    assert response.status_code == 200, server.log()
    outputs = {o["name"]: o["data"][0] for o in response.json()["outputs"]}
    assert outputs["tabulate_version"] == "0.8.10"
    envs = folder / ".mlpack" / "envs"
    assert outputs["python"].startswith(str(envs))
    assert (Path(outputs["python"]).parents[1] / ".mlpack-environment.json").is_file()
    pids = {
        httpx.post(server.url + "/v2/models/table-old/infer", json=body).json()["outputs"][3][
            "data"
        ][0]
        for _ in range(8)
    }
    assert server.process.pid not in {int(p) for p in pids}


def test_tarball_escaping_its_folder_is_refused(server: RunningServer, folder: Path) -> None:
    index = {item["name"]: item for item in httpx.post(server.url + "/v2/repository/index").json()}
    assert index["evil"]["state"] == "UNAVAILABLE"
    assert "leaves the environment" in index["evil"]["reason"]
    assert (
        not (folder / ".mlpack" / "escaped.txt").exists() and not (folder / "escaped.txt").exists()
    )
    assert index["table-old"]["state"] == "READY"


def test_restart_reuses_the_unpacked_environment(
    server: RunningServer, folder: Path, tmp_path: Path
) -> None:
    envs = folder / ".mlpack" / "envs"
    unpacked = [p for p in envs.iterdir() if len(p.name) == 32]
    assert len(unpacked) == 1
    marker = (unpacked[0] / ".mlpack-environment.json").stat().st_mtime_ns
    second = start_server(folder, tmp_path, wait_ready=False)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = {
                i["name"]: i["state"]
                for i in httpx.post(second.url + "/v2/repository/index").json()
            }
            if state.get("table-old") == "READY":
                break
            time.sleep(0.1)
        assert state.get("table-old") == "READY", second.log()
    finally:
        second.stop()
    assert (unpacked[0] / ".mlpack-environment.json").stat().st_mtime_ns == marker
    assert f"unpacking environment {folder / 'table_old'}" not in second.log()
