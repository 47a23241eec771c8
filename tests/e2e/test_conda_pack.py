"""conda-pack for real, with no conda channel: a conda-style prefix made here (a copied
interpreter, a package only it has, ``conda-meta`` records) is packed by the real
``conda_pack`` library (``mlpack.environments.pack.pack_conda_prefix``), unpacked by
``mlpack start`` (running conda-pack's own ``conda-unpack``) and serves a model through
``parameters.environment_tarball``."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from mlpack.environments.files import read_source_record
from mlpack.environments.pack import pack_conda_prefix
from tests.helpers.server import start_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MODEL = """
import sys

import conda_only

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class Probe(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        outputs = [
            ResponseOutput(name=name, shape=[1], datatype="BYTES", data=[value])
            for name, value in (("where", conda_only.WHERE), ("python", sys.executable))
        ]
        return InferenceResponse(model_name=self.name, outputs=outputs)
"""


def _conda_style_prefix(prefix: Path) -> None:
    """A prefix laid out as conda makes one: interpreter, site-packages, conda-meta records."""
    subprocess.run(
        [sys._base_executable, "-m", "venv", "--copies", "--without-pip", str(prefix)],  # type: ignore[attr-defined]
        check=True,
    )
    version = "{}.{}.{}".format(*sys.version_info[:3])
    site = prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    package = site / "conda_only"
    package.mkdir(parents=True)
    # A text file holding the build prefix: conda-pack must rewrite it on unpack.
    (package / "__init__.py").write_text(f"WHERE = {str(prefix)!r}\n")
    meta = prefix / "conda-meta"
    meta.mkdir()
    files = sorted(str(p.relative_to(prefix)) for p in prefix.rglob("*") if p.is_file())

    def record(name: str, owned: list[str]) -> dict[str, object]:
        return {
            "name": name, "version": version if name == "python" else "1.0", "build": "0",
            "build_number": 0, "channel": "local", "url": f"local::{name}", "link": None,
            "files": owned,
        }  # fmt: skip

    python_files = [f for f in files if not f.startswith(str(package.relative_to(prefix)))]
    (meta / f"python-{version}-0.json").write_text(json.dumps(record("python", python_files)))
    own = [f for f in files if f not in python_files]
    (meta / "conda-only-1.0-0.json").write_text(json.dumps(record("conda-only", own)))


def test_conda_packed_environment_is_served(tmp_path: Path) -> None:
    pytest.importorskip("conda_pack")
    prefix = tmp_path / "build-prefix" / "env"
    _conda_style_prefix(prefix)
    model = tmp_path / "served" / "probe"
    model.mkdir(parents=True)
    (model / "models.py").write_text(MODEL)
    (model / "environment.yml").write_text("dependencies: [python=3.11]\n")
    tarball = pack_conda_prefix(prefix, model / "conda-env.tar.gz", model / "environment.yml")
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    assert {"bin/conda-unpack", "bin/python", "conda-meta/conda-only-1.0-0.json"} <= names
    assert read_source_record(tarball) == {
        "file": "environment.yml",
        "sha256": __import__("hashlib")
        .sha256((model / "environment.yml").read_bytes())
        .hexdigest(),
    }
    (model / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "probe",
                "implementation": "models.Probe",
                "parameters": {"environment_tarball": "conda-env.tar.gz"},
            }
        )
    )
    envs = tmp_path / "envs"
    server = start_server(
        model.parent, tmp_path, settings={"environments_dir": str(envs)}, wait_ready=False
    )
    try:
        deadline = time.monotonic() + 120
        state: dict[str, object] = {}
        while time.monotonic() < deadline:
            (state,) = httpx.post(server.url + "/v2/repository/index").json()
            if state["state"] in ("READY", "UNAVAILABLE"):
                break
            time.sleep(0.2)
        assert state["state"] == "READY", server.log()
        body = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1]}]}
        response = httpx.post(server.url + "/v2/models/probe/infer", json=body, timeout=30)
        assert response.status_code == 200, response.text + server.log()
        outputs = {o["name"]: o["data"][0] for o in response.json()["outputs"]}
    finally:
        server.stop()
    # The model ran on the unpacked environment's interpreter, and conda-unpack moved the
    # build prefix recorded in the package's text file to where it was unpacked.
    assert outputs["python"].startswith(str(envs))
    unpacked = Path(outputs["python"]).parents[1]
    assert outputs["where"] == str(unpacked)
    assert "model 'probe' uses environment tarball" in server.log()
