"""examples/streaming end to end: the README's curl -N calls and client.py, REST and gRPC.

The real server streams the example's Markov generator; each transport must give the same
tokens (one per event / message, in order) that ``/generate`` answers in one piece.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from typing import Any

import httpx
import orjson
import pytest

from mlpack.client import AsyncClient, Client, ServerError
from tests.helpers.server import REPO, RunningServer, checkout_pythonpath, start_server

pytestmark = pytest.mark.e2e
EXAMPLE = REPO / "examples" / "streaming"
PARAMETERS = {"max_tokens": 12, "seed": 7}


@pytest.fixture(scope="module", params=[0, 2], ids=lambda w: f"workers={w}")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp_path = tmp_path_factory.mktemp("streaming")
    folder = shutil.copytree(EXAMPLE, tmp_path / "streaming")
    running = start_server(folder, tmp_path, settings={"parallel_workers": request.param})
    try:
        yield running
    finally:
        running.stop()


def _client_py(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "PYTHONPATH": checkout_pythonpath(os.environ.get("PYTHONPATH", "")),
    }
    return subprocess.run(
        [sys.executable, str(EXAMPLE / "client.py"), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


def test_curl_infer_stream_frames_one_event_per_token(server: RunningServer) -> None:
    # What `curl -N .../infer_stream -d @request.json` prints: `data: {...}` events.
    body = (EXAMPLE / "request.json").read_bytes()
    url = f"{server.url}/v2/models/markov/infer_stream"
    with httpx.stream("POST", url, content=body, headers={"Content-Type": "application/json"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(r.iter_bytes())
    events = [e for e in raw.split(b"\n\n") if e]
    assert all(e.startswith(b"data: ") for e in events)
    responses = [orjson.loads(e[len(b"data: ") :]) for e in events]
    assert len(responses) == 12  # max_tokens in request.json
    tokens = [r["outputs"][0]["data"][0] for r in responses]
    whole = httpx.post(f"{server.url}/v2/models/markov/infer", content=body, timeout=30).json()
    assert "".join(tokens) == whole["outputs"][0]["data"][0]


def test_rest_clients_stream_what_generate_answers(server: RunningServer) -> None:
    with Client(server.url) as client:
        whole = client.generate("markov", "the keeper", PARAMETERS)["text_output"]
        tokens = [
            c["text_output"] for c in client.generate_stream("markov", "the keeper", PARAMETERS)
        ]
        with pytest.raises(ServerError, match=r"'max_tokens' must be 1\.\.1000") as refused:
            list(client.generate_stream("markov", "the keeper", {"max_tokens": 5000}))
    assert refused.value.status == 400
    assert len(tokens) == 12 and "".join(tokens) == whole

    async def stream() -> list[str]:
        async with AsyncClient(server.url) as client:
            request = orjson.loads((EXAMPLE / "request.json").read_bytes())
            return [r.outputs[0].data[0] async for r in client.infer_stream("markov", request)]

    assert "".join(asyncio.run(stream())) == "".join(
        c for c in _generate(server, "the keeper", {"max_tokens": 12, "seed": 7})
    )


def _generate(server: RunningServer, prompt: str, parameters: dict[str, Any]) -> list[str]:
    with Client(server.url) as client:
        return [c["text_output"] for c in client.generate_stream("markov", prompt, parameters)]


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_client_py_prints_the_generated_text(server: RunningServer, transport: str) -> None:
    target = ["--url", server.url] if transport == "rest" else ["--grpc", server.grpc_address]
    result = _client_py("the keeper", "--max-tokens", "20", "--seed", "3", *target)
    assert result.returncode == 0, result.stderr
    expected = "the keeper" + "".join(
        _generate(server, "the keeper", {"max_tokens": 20, "seed": 3})
    )
    assert result.stdout == expected + "\n"


def test_client_py_reports_a_refused_request(server: RunningServer) -> None:
    result = _client_py("the keeper", "--max-tokens", "0", "--url", server.url)
    assert result.returncode == 1
    assert "400: model 'markov': parameter 'max_tokens' must be 1..1000, got 0" in result.stderr
