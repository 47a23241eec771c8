"""The hostile tarball corpus through the CLI: `mlpack env unpack` and `mlpack start`.

Each tarball is refused with its own message, the command fails (or the model is
UNAVAILABLE with that message as its reason) and nothing is written outside.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mlpack.cli import create_app
from tests.helpers.hostile_archives import CORPUS, build_corpus, snapshot
from tests.helpers.server import RunningServer, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Path]]:
    """(root of everything, the folder attacks aim at, the tarballs)."""
    root = tmp_path_factory.mktemp("hostile-e2e")
    outside = root / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("keep me")
    return root, outside, build_corpus(root / "tarballs", outside)


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_env_unpack_refuses_each_hostile_tarball(
    case: str, corpus: tuple[Path, Path, dict[str, Path]], tmp_path: Path
) -> None:
    root, _, tarballs = corpus
    before = snapshot(root)
    envs = tmp_path / "envs"
    result = CliRunner().invoke(
        create_app(), ["env", "unpack", str(tarballs[case]), "--environments-dir", str(envs)]
    )
    assert result.exit_code != 0
    assert CORPUS[case][1] in result.output, result.output
    assert "Traceback" not in result.output
    assert snapshot(root) == before
    assert [p.name for p in envs.iterdir() if not p.name.endswith(".lock")] == []


@pytest.fixture(scope="module")
def server(
    corpus: tuple[Path, Path, dict[str, Path]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root, _, tarballs = corpus
    models = root / "models"
    for case, tarball in tarballs.items():
        folder = models / case
        folder.mkdir(parents=True)
        (folder / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": case,
                    "implementation": "models.Nothing",
                    "parameters": {"environment_tarball": str(tarball)},
                }
            )
        )
    running = start_server(models, tmp_path_factory.mktemp("logs"), wait_ready=False)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        index = httpx.post(running.url + "/v2/repository/index").json()
        if len(index) == len(CORPUS) and all(item["state"] == "UNAVAILABLE" for item in index):
            break
        time.sleep(0.2)
    yield running
    running.stop()


def test_start_refuses_each_hostile_environment_tarball(
    server: RunningServer, corpus: tuple[Path, Path, dict[str, Path]]
) -> None:
    root, outside, _ = corpus
    index = {item["name"]: item for item in httpx.post(server.url + "/v2/repository/index").json()}
    assert set(index) == set(CORPUS), server.log()
    for case, (_, words) in CORPUS.items():
        assert index[case]["state"] == "UNAVAILABLE", (case, index[case])
        assert words in index[case]["reason"], (case, index[case]["reason"])
    assert snapshot(outside) == {"victim.txt"}
    assert (outside / "victim.txt").read_text() == "keep me"
    envs = root / "models" / ".mlpack" / "envs"
    assert [p.name for p in envs.iterdir() if not p.name.endswith(".lock")] == []
    assert server.process.poll() is None
