"""The job against in-process fake servers: ordering, retries, batching fallback, dead servers."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

import mlpack.infer.job as job_module
from mlpack.client.errors import ServerError, TransportError
from mlpack.infer.job import InferOptions, JobInterrupted, run_job


class FakeServer:
    """Echoes ``x`` doubled after a random delay; fails on demand."""

    def __init__(self, url: str, fail_first: int = 0, dead: bool = False) -> None:
        self.url = url
        self.fail_first = fail_first
        self.dead = dead
        self.calls: list[int] = []  # rows per call

    async def infer_json(
        self,
        model_name: str,
        request: dict[str, Any],
        *,
        model_version: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        if self.dead:
            raise TransportError(f"{self.url}: refused")
        await asyncio.sleep(random.uniform(0, 0.003))
        tensor = request["inputs"][0]
        self.calls.append(tensor["shape"][0])
        if self.fail_first > 0:
            self.fail_first -= 1
            raise ServerError(503, "busy", retry_after=0.001)
        data = tensor["data"]
        if any(v < 0 for v in data):
            raise ServerError(500, "negative")
        return {
            "model_name": model_name,
            "id": request["id"],
            "outputs": [
                {
                    "name": "y",
                    "shape": tensor["shape"],
                    "datatype": "FP64",
                    "data": [v * 2 for v in data],
                }
            ],
        }

    async def aclose(self) -> None:
        pass


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeServer]:
    made: dict[str, FakeServer] = {}

    def make(url: str, options: InferOptions) -> FakeServer:
        made[url] = FakeServer(url, fail_first=5 if url == "busy" else 0, dead=url == "dead")
        return made[url]

    monkeypatch.setattr(job_module, "make_client", make)
    return made


def write_input(path: Path, values: list[float]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [v]}]})
            + "\n"
            for v in values
        )
    )
    return path


def outputs(path: Path) -> list[Any]:
    return [
        json.loads(line).get("outputs", [{}])[0].get("data", "error")
        for line in path.read_text().splitlines()
    ]


@pytest.mark.parametrize("batch_size", [1, 7])
async def test_order_and_batching(
    servers: dict[str, FakeServer], tmp_path: Path, batch_size: int
) -> None:
    values = [float(i) for i in range(200)]
    values[13] = -1.0
    inp = write_input(tmp_path / "in.jsonl", values)
    stats = await run_job(
        InferOptions(
            urls=["a"],
            model_name="m",
            input_path=inp,
            output_path=tmp_path / "out.jsonl",
            workers=8,
            batch_size=batch_size,
            retries=0,
        )
    )
    expected: list[Any] = [[v * 2] for v in values]
    expected[13] = "error"
    assert outputs(tmp_path / "out.jsonl") == expected
    assert stats.ok == 199 and stats.failed == 1
    if batch_size > 1:
        assert max(servers["a"].calls) == batch_size


async def test_retries_503_and_avoids_dead_server(
    servers: dict[str, FakeServer], tmp_path: Path
) -> None:
    inp = write_input(tmp_path / "in.jsonl", [float(i) for i in range(50)])
    stats = await run_job(
        InferOptions(
            urls=["dead", "busy"],
            model_name="m",
            input_path=inp,
            output_path=tmp_path / "out.jsonl",
            workers=4,
            retries=10,
            backoff=0.001,
        )
    )
    assert stats.ok == 50 and stats.retries >= 5
    assert outputs(tmp_path / "out.jsonl") == [[i * 2.0] for i in range(50)]


async def test_cancel_saves_progress_and_resume_completes(
    servers: dict[str, FakeServer], tmp_path: Path
) -> None:
    inp = write_input(tmp_path / "in.jsonl", [float(i) for i in range(300)])
    out = tmp_path / "out.jsonl"
    options = InferOptions(urls=["a"], model_name="m", input_path=inp, output_path=out, workers=2)
    task = asyncio.create_task(run_job(options))
    while not out.exists() or out.read_bytes().count(b"\n") < 20:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(JobInterrupted):
        await task
    written = out.read_bytes().count(b"\n")
    assert 20 <= written < 300
    options.resume = True
    stats = await run_job(options)
    assert stats.skipped == written and stats.ok == 300 - written
    assert outputs(out) == [[i * 2.0] for i in range(300)]
