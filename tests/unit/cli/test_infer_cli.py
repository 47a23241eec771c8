"""``mlpack infer`` flags that shape the job: the default server follows the transport."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import mlpack.infer.job as job_module
from mlpack.cli import create_app
from mlpack.infer.job import InferOptions
from mlpack.infer.progress import JobStats


@pytest.mark.parametrize(
    ("args", "urls"),
    [
        ([], ["localhost:8080"]),
        (["-t", "grpc"], ["localhost:8081"]),
        (["-t", "grpc", "-u", "h:9"], ["h:9"]),
        (["-t", "rest", "-u", "a:1", "-u", "b:2"], ["a:1", "b:2"]),
    ],
)
def test_default_url_follows_the_transport(
    args: list[str], urls: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[InferOptions] = []

    async def record(options: InferOptions, reporter: object = None) -> JobStats:
        seen.append(options)
        return JobStats()

    monkeypatch.setattr(job_module, "run_job", record)
    (tmp_path / "in.jsonl").write_text("{}\n")
    result = CliRunner().invoke(
        create_app(),
        [
            "infer",
            "-m",
            "m",
            "-i",
            str(tmp_path / "in.jsonl"),
            "-o",
            str(tmp_path / "o.jsonl"),
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    assert seen[0].urls == urls
    assert seen[0].retry_for >= 30  # the default rides out a restart
