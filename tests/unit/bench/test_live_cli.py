"""The live terminal view and the bench/tune command lines (parsing and messages, no server)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from mlpack.bench.live import LiveView
from mlpack.bench.loadgen import LoadProgress
from mlpack.cli import create_app


def _result(server: dict[str, object]) -> dict[str, object]:
    client = {"rps": 1234.0, "rows_per_s": 2468.0, "p50_ms": 1.5, "p99_ms": 9.25, "errors": 0}
    config = {"transport": "grpc", "concurrency": 8, "rows": 2, "rate": None, "server": server}
    return {"label": "x", "config": config, "client": client, "server": None}


def test_live_view_shows_finished_and_running_points() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)
    progress = LoadProgress(phase="measure", completed=42, errors=1, started_at=0.0)
    with LiveView(console) as view:
        view.start("grpc c=16 rows=2", progress)
        view.finish(_result({"max_batch_size": 8}))
        view.start("grpc c=16 rows=2", progress)
        view._live.refresh()  # type: ignore[union-attr]
    text = out.getvalue()
    assert "grpc rows=2 [max_batch_size=8]" in text  # brackets are not taken as markup
    assert "1,234" in text and "9.25" in text and "42 done, 1 errors" in text


def test_plain_output_when_not_a_terminal() -> None:
    out = io.StringIO()
    with LiveView(Console(file=out, force_terminal=False)) as view:
        view.finish(_result({"parallel_workers": 2}))
    assert "grpc rows=2 [parallel_workers=2] c=8: 1,234 req/s" in out.getvalue()


def test_cli_messages() -> None:
    runner = CliRunner()
    app = create_app()
    result = runner.invoke(app, ["bench", "--no-progress"])
    assert result.exit_code == 2 and "-m/--model-name" in result.output
    result = runner.invoke(app, ["bench", "-m", "x", "-c", "1,zero"])
    assert result.exit_code == 2 and "expected numbers" in result.output
    result = runner.invoke(app, ["bench", "-m", "x", "--rows", "0"])
    assert result.exit_code == 2 and "must be positive" in result.output
    result = runner.invoke(app, ["bench", "--compare", "nope-a.json", "nope-b.json"])
    assert result.exit_code == 1 and "cannot read nope-a.json" in result.output
    result = runner.invoke(app, ["tune", "no-such-folder", "--slo-p99", "25ms"])
    assert result.exit_code == 1 and "is not a folder" in result.output


def test_bench_against_nothing_is_a_clear_error(tmp_path: Path) -> None:
    from mlpack.bench.processes import free_ports

    (port,) = free_ports(1)
    result = CliRunner().invoke(
        create_app(), ["bench", "-m", "x", "-u", f"127.0.0.1:{port}", "-n", "1", "--no-progress"]
    )
    assert result.exit_code == 1 and "cannot reach" in result.output
