"""``mlpack bench``: load-test any V2 server, or run an experiment file, and write reports."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit

import typer

from .errors import USAGE_ERROR


def register(app: typer.Typer) -> None:
    app.command(name="bench")(bench)


def _numbers(values: list[str], kind: type, flag: str) -> list[Any]:
    """``["1,4", "16"]`` → ``[1, 4, 16]`` (comma lists and repeated flags both work)."""
    out = []
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            try:
                number = kind(part)
            except ValueError:
                _usage(f"{flag} {value!r}: expected numbers separated by commas")
            if number <= 0:
                _usage(f"{flag} {value!r}: values must be positive")
            out.append(number)
    return out


def _usage(message: str) -> NoReturn:
    typer.secho(f"Error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(USAGE_ERROR)


@contextlib.contextmanager
def bench_errors() -> Iterator[None]:
    from ..bench.errors import BenchError

    try:
        yield
    except BenchError as error:
        typer.secho(f"Error: {error.message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None


def default_grpc(url: str) -> str:
    """The gRPC address next to a REST URL: same host, REST port + 1 (8080 → 8081)."""
    parts = urlsplit(url)
    return f"{parts.hostname or '127.0.0.1'}:{(parts.port or 80) + 1}"


def bench(
    model_name: Annotated[
        str | None, typer.Option("-m", "--model-name", help="Model to load-test.")
    ] = None,
    url: Annotated[
        str, typer.Option("-u", "--url", help="REST address (host:port).")
    ] = "localhost:8080",
    grpc_url: Annotated[
        str | None, typer.Option("--grpc-url", help="gRPC host:port (default: REST port + 1).")
    ] = None,
    model_version: Annotated[
        str | None, typer.Option("--model-version", help="Model version.")
    ] = None,
    transport: Annotated[
        list[str], typer.Option("-t", "--transport", help="rest, rest-binary or grpc (repeatable).")
    ] = ["rest"],  # noqa: B006 (Typer needs a list default)
    concurrency: Annotated[
        list[str],
        typer.Option("-c", "--concurrency", help="Requests in flight, e.g. 1,4,16 (a sweep)."),
    ] = ["1"],  # noqa: B006
    rate: Annotated[
        list[str],
        typer.Option("--rate", help="Open loop: requests/s, e.g. 100,200 (-c: most connections)."),
    ] = [],  # noqa: B006
    rows: Annotated[
        list[str], typer.Option("-b", "--rows", help="Rows (batch items) per request, e.g. 1,8.")
    ] = ["1"],  # noqa: B006
    duration: Annotated[
        float, typer.Option("-d", "--duration", min=0.001, help="Measured seconds per point.")
    ] = 10.0,
    requests: Annotated[
        int | None,
        typer.Option("-n", "--requests", min=1, help="Requests per point instead of -d."),
    ] = None,
    warmup: Annotated[
        float, typer.Option("-w", "--warmup", min=0, help="Warm-up seconds per point.")
    ] = 1.0,
    shape: Annotated[
        list[str],
        typer.Option("--shape", help="Input shape NAME=D1,D2 (fills -1 dims; repeatable)."),
    ] = [],  # noqa: B006
    data: Annotated[
        Path | None,
        typer.Option("--data", help="JSONL file of V2 requests instead of generated data."),
    ] = None,
    local: Annotated[
        bool, typer.Option("--local", help="Also sample the (local) server's CPU and RSS.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.001, help="Seconds to wait for each answer.")
    ] = 30.0,
    experiment: Annotated[
        list[Path],
        typer.Option(
            "-e", "--experiment", help="Experiment YAML (repeat: later overrides earlier)."
        ),
    ] = [],  # noqa: B006
    json_path: Annotated[Path | None, typer.Option("--json", help="Write results as JSON.")] = None,
    markdown_path: Annotated[
        Path | None, typer.Option("--markdown", help="Write a Markdown table.")
    ] = None,
    html_path: Annotated[Path | None, typer.Option("--html", help="Write the HTML report.")] = None,
    open_report: Annotated[
        bool, typer.Option("--open", help="Open the HTML report in a browser.")
    ] = False,
    compare: Annotated[
        tuple[Path, Path] | None,
        typer.Option("--compare", help="Print ratios b/a of two JSON results."),
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Live view (default: on a terminal).")
    ] = True,
) -> None:
    """Measure a V2 server: throughput, latency percentiles, errors and the server-side split."""
    from ..bench import report
    from ..bench.loadgen import run

    if compare is not None:
        with bench_errors():
            table, _ = report.compare(report.read_json(compare[0]), report.read_json(compare[1]))
        typer.echo(f"a = {compare[0]}\nb = {compare[1]}\n")
        typer.echo(table)
        return
    if experiment:
        from ..bench.experiment import load_experiment, run_experiment

        with bench_errors():
            spec = load_experiment(experiment)
            document = run(run_experiment(spec, progress=progress), spec.matrix.transport)
        _write_outputs(
            document,
            json_path or spec.output_path("json"),
            markdown_path or spec.output_path("markdown"),
            html_path or spec.output_path("html"),
            open_report,
        )
        return
    if model_name is None:
        _usage("give the model: -m/--model-name (or an --experiment file, or --compare A B)")
    for name in transport:
        if name not in ("rest", "rest-binary", "grpc"):
            _usage(f"--transport {name!r}: choose rest, rest-binary or grpc")
    from ..bench.live import LiveView
    from ..bench.measure import Target, normalise_url
    from ..bench.payloads import parse_shapes, read_jsonl, rows_of
    from ..bench.processes import pid_listening_on
    from ..bench.sweep import RequestSource, expand_points, run_points

    base = normalise_url(url)
    pid = None
    if local:
        pid = pid_listening_on(urlsplit(base).port or 80)
        if pid is None:
            _usage(f"--local: no process of this user listens on {base}")
    with bench_errors():
        source = RequestSource(data=data, shapes=parse_shapes(shape))
        if data is not None:  # the file decides the rows per request
            rows = [str(rows_of(read_jsonl(data)[0]))]
        target = Target(base, model_name, grpc_url or default_grpc(base), model_version, pid)
        points = expand_points(
            transport,
            _numbers(concurrency, int, "--concurrency"),
            _numbers(rows, int, "--rows"),
            _numbers(rate, float, "--rate"),
            duration=duration,
            requests=requests,
            warmup=warmup,
            timeout=timeout,
        )
        with LiveView(enabled=progress) as view:
            results = run(run_points(target, points, source, view), transport)
    document = report.make_document(
        results, f"mlpack bench: {model_name} at {base}", target={"url": base, "model": model_name}
    )
    _write_outputs(document, json_path, markdown_path, html_path, open_report)


def _write_outputs(
    document: dict[str, Any],
    json_path: Path | None,
    markdown_path: Path | None,
    html_path: Path | None,
    open_report: bool,
) -> None:
    from ..bench import report
    from ..bench.html import write_html

    table = report.markdown_table(document)
    typer.echo(table)
    if json_path:
        report.write_json(document, json_path)
        typer.echo(f"JSON: {json_path}")
    if markdown_path:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(table)
        typer.echo(f"Markdown: {markdown_path}")
    if html_path or open_report:
        path = html_path or Path("mlpack-bench.html")
        write_html(document, path, open_browser=open_report)
        typer.echo(f"HTML: {path}")
    failed = [
        r["label"] for r in document["results"] if r["client"]["requests"] == r["client"]["errors"]
    ]
    if failed:
        typer.secho(
            f"Error: every request failed at {', '.join(failed)}", err=True, fg=typer.colors.RED
        )
        raise typer.Exit(1)
