"""examples/sentiment: the README's commands (mlpack start, the curl requests)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.helpers.server import REPO, start_server

pytestmark = pytest.mark.e2e
EXAMPLE = REPO / "examples" / "sentiment"


def test_readme_requests(tmp_path: Path) -> None:
    folder = shutil.copytree(EXAMPLE, tmp_path / "sentiment")
    server = start_server(folder, tmp_path)
    try:
        url = f"{server.url}/v2/models/sentiment/infer"
        response = httpx.post(
            url,
            content=(folder / "request.json").read_bytes(),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        assert outputs["label"]["data"] == ["positive", "negative", "neutral"]
        assert outputs["label"]["datatype"] == "BYTES" and outputs["label"]["shape"] == [3, 1]
        assert outputs["score"]["data"] == [2, -3, 0] and outputs["score"]["datatype"] == "INT64"

        refused = httpx.post(
            url,
            json={"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]},
        )
        assert refused.status_code == 400
        assert refused.json() == {
            "error": "input 'text': model 'sentiment' expects BYTES, got FP32"
        }
    finally:
        server.stop()
