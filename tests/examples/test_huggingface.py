"""examples/huggingface: train.py, mlpack start, the README's request, batching, refusals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.helpers.server import REPO, start_server

pytestmark = pytest.mark.e2e
EXAMPLE = REPO / "examples" / "huggingface"


def test_readme_request_and_batched_reviews(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    folder = shutil.copytree(
        EXAMPLE, tmp_path / "huggingface", ignore=shutil.ignore_patterns("model")
    )
    subprocess.run(
        [sys.executable, "train.py"], cwd=folder, check=True, capture_output=True, timeout=300
    )
    assert {p.name for p in (folder / "model").iterdir()} >= {"config.json", "tokenizer.json"}
    # HF_HUB_OFFLINE=0 from outside: the runtime switches the Hub off itself.
    server = start_server(folder, tmp_path, timeout=180, env={"HF_HUB_OFFLINE": "0"})
    try:
        metadata = httpx.get(f"{server.url}/v2/models/reviews", timeout=30).json()
        assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == [("args", "BYTES")]
        assert [o["name"] for o in metadata["outputs"]] == ["label", "score"]
        url = f"{server.url}/v2/models/reviews/infer"
        response = httpx.post(
            url,
            content=(folder / "request.json").read_bytes(),
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        assert outputs["label"]["data"] == ["positive", "negative"]
        assert outputs["label"]["shape"] == [2, 1]
        assert all(0.5 < score <= 1.0 for score in outputs["score"]["data"])

        # Concurrent single reviews are batched; each answer is its own review's.
        reviews = [f"a {w} and {w} story" for w in ("great", "awful", "good", "dull")] * 3

        def label(text: str) -> str:
            body = {"inputs": [{"name": "args", "shape": [1], "datatype": "BYTES", "data": [text]}]}
            answer = httpx.post(url, json=body, timeout=60)
            assert answer.status_code == 200, answer.text
            return str(answer.json()["outputs"][0]["data"][0])

        with ThreadPoolExecutor(4) as pool:
            labels = list(pool.map(label, reviews))
        assert labels == ["positive", "negative", "positive", "negative"] * 3

        refused = httpx.post(
            url,
            timeout=30,
            content=json.dumps(
                {"inputs": [{"name": "args", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
            ),
        )
        assert refused.status_code == 400 and "BYTES" in refused.json()["error"]
    finally:
        server.stop()
