"""``mlpack tune FOLDER --slo-p99 25ms``: the batching/worker settings with the most throughput."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .bench import bench_errors


def register(app: typer.Typer) -> None:
    app.command(name="tune")(tune)


def tune(
    folder: Annotated[Path, typer.Argument(help="The model folder (or folder of models) to tune.")],
    slo_p99: Annotated[
        str, typer.Option("--slo-p99", help="Latency objective for p99, e.g. 25ms.")
    ],
    model_name: Annotated[
        str | None,
        typer.Option("-m", "--model-name", help="Model to tune (default: the only one)."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("-c", "--concurrency", min=1, help="Target requests in flight.")
    ] = 16,
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=0.001, help="Target rate instead (open loop, req/s)."),
    ] = None,
    rows: Annotated[int, typer.Option("-b", "--rows", min=1, help="Rows per request.")] = 1,
    transport: Annotated[
        str, typer.Option("-t", "--transport", help="rest, rest-binary or grpc.")
    ] = "rest",
    space: Annotated[
        list[str],
        typer.Option(
            "--space", help="Values to try, NAME=V1,V2 (repeatable; replaces the default space)."
        ),
    ] = [],  # noqa: B006
    budget: Annotated[
        int | None,
        typer.Option("--budget", min=1, help="Most measurements (default: a third of the grid)."),
    ] = None,
    duration: Annotated[
        float, typer.Option("-d", "--duration", min=0.1, help="Seconds per measurement.")
    ] = 3.0,
    warmup: Annotated[
        float, typer.Option("-w", "--warmup", min=0, help="Warm-up seconds per measurement.")
    ] = 0.5,
    shape: Annotated[
        list[str], typer.Option("--shape", help="Input shape NAME=D1,D2 (fills -1 dims).")
    ] = [],  # noqa: B006
    data: Annotated[Path | None, typer.Option("--data", help="JSONL file of V2 requests.")] = None,
    write: Annotated[
        bool, typer.Option("--write", help="Write the recommendation into the folder's settings.")
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write every trial as JSON.")
    ] = None,
) -> None:
    """Search batching and worker settings for the most throughput that meets a p99 objective."""
    from ..bench.loadgen import run
    from ..bench.payloads import parse_shapes
    from ..bench.search import grid_size
    from ..bench.sweep import RequestSource
    from ..bench.tune import (
        DEFAULT_SPACE,
        TuneOptions,
        model_name_in,
        parse_duration_ms,
        parse_space,
        results_table,
        run_tune,
        trial_summary,
        write_settings,
    )

    if transport not in ("rest", "rest-binary", "grpc"):
        typer.secho(
            f"Error: --transport {transport!r}: choose rest, rest-binary or grpc",
            err=True,
            fg="red",
        )
        raise typer.Exit(2)
    with bench_errors():
        if not folder.is_dir():
            raise _error(f"{folder} is not a folder")
        options = TuneOptions(
            folder=folder.resolve(),
            model=model_name_in(folder, model_name),
            slo_p99_ms=parse_duration_ms(slo_p99),
            space=parse_space(space) if space else dict(DEFAULT_SPACE),
            concurrency=concurrency,
            rate=rate,
            rows=rows,
            transport=transport,
            duration=duration,
            warmup=warmup,
            budget=budget,
            source=RequestSource(data=data, shapes=parse_shapes(shape)),
        )
        size = grid_size(options.space)
        load = f"rate {rate:g}/s" if rate else f"concurrency {concurrency}"
        typer.echo(
            f"Tuning {options.model!r} for p99 <= {options.slo_p99_ms:g} ms at {load}: "
            f"{size} settings in the grid, at most {budget or max(1, size // 3)} measurements",
            err=True,
        )
        found, size = run(run_tune(options), [transport])
    typer.echo(results_table(found, options.slo_p99_ms))
    typer.echo(f"{found.measurements} measurements for a grid of {size}.")
    if json_path is not None:
        json_path.write_text(
            json.dumps(
                {
                    "kind": "mlpack-tune",
                    "model": options.model,
                    "slo_p99_ms": options.slo_p99_ms,
                    "grid": size,
                    "measurements": found.measurements,
                    "best": trial_summary(found.best) if found.best else None,
                    "trials": [trial_summary(t) for t in found.trials],
                },
                indent=2,
            )
            + "\n"
        )
    if found.best is None:
        typer.secho(
            f"No setting met p99 <= {options.slo_p99_ms:g} ms; the closest is #1 above.",
            err=True,
            fg="red",
        )
        raise typer.Exit(1)
    best = found.best
    settings = ", ".join(f"{k}={v}" for k, v in best.config)
    typer.echo(
        f"Recommended: {settings}  ({best.throughput:,.0f} rows/s, p99 {best.p99_ms:.1f} ms)"
    )
    if write:
        diff = write_settings(options.folder, options.model, best)
        typer.echo(diff or "The folder's settings already match.")


def _error(message: str) -> Exception:
    from ..bench.tune import TuneError

    return TuneError(message)
