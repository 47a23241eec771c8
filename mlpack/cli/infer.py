"""``mlpack infer``: a batch job of JSONL inference requests against V2 servers."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..infer.retry import DEFAULT_RETRIES, DEFAULT_RETRY_FOR
from .errors import USAGE_ERROR, exit_on_error

INTERRUPTED = 130
LINES_FAILED = 1
DEFAULT_URLS = {"rest": "localhost:8080", "grpc": "localhost:8081"}


class TransportName(str, Enum):
    rest = "rest"
    grpc = "grpc"


def register(app: typer.Typer) -> None:
    app.command(name="infer")(infer)


def _env(name: str) -> str:
    return f"MLPACK_INFER_{name}"


def infer(
    model_name: Annotated[
        str,
        typer.Option(
            "-m", "--model-name", envvar=_env("MODEL_NAME"), help="Model to send the requests to."
        ),
    ],
    input_data_path: Annotated[
        Path,
        typer.Option(
            "-i",
            "--input-data-path",
            envvar=_env("INPUT_DATA_PATH"),
            help="JSONL file: one V2 inference request per line.",
        ),
    ],
    output_data_path: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output-data-path",
            envvar=_env("OUTPUT_DATA_PATH"),
            help="JSONL file: one response per input line, in order.",
        ),
    ],
    url: Annotated[
        list[str] | None,
        typer.Option(
            "-u",
            "--url",
            envvar=_env("URL"),
            help="Server host:port (repeat to spread over several) "
            "[default: localhost:8080 over REST, localhost:8081 over gRPC].",
            show_default=False,
        ),
    ] = None,
    model_version: Annotated[
        str | None,
        typer.Option("--model-version", envvar=_env("MODEL_VERSION"), help="Model version."),
    ] = None,
    workers: Annotated[
        int,
        typer.Option("-w", "--workers", envvar=_env("WORKERS"), min=1, help="Requests in flight."),
    ] = 10,
    retries: Annotated[
        int,
        typer.Option(
            "-r",
            "--retries",
            envvar=_env("RETRIES"),
            min=0,
            help="Retries of a request the server answered with a 5xx or 408.",
        ),
    ] = DEFAULT_RETRIES,
    retry_for: Annotated[
        float,
        typer.Option(
            "--retry-for",
            envvar=_env("RETRY_FOR"),
            min=0,
            help="Seconds a request keeps being retried while the server is unreachable or "
            "overloaded (no connection, timeouts, 429, 502/503/504); bounds every retry.",
        ),
    ] = DEFAULT_RETRY_FOR,
    batch_size: Annotated[
        int,
        typer.Option(
            "-s",
            "--batch-size",
            envvar=_env("BATCH_SIZE"),
            min=1,
            help="Merge this many lines into one request (micro-batching).",
        ),
    ] = 1,
    binary_data: Annotated[
        bool,
        typer.Option(
            "-b",
            "--binary-data",
            envvar=_env("BINARY_DATA"),
            help="Send tensors as binary data (REST binary extension).",
        ),
    ] = False,
    transport: Annotated[
        TransportName,
        typer.Option("-t", "--transport", envvar=_env("TRANSPORT"), help="rest or grpc."),
    ] = TransportName.rest,
    request_headers: Annotated[
        list[str] | None,
        typer.Option(
            "-H",
            "--request-headers",
            envvar=_env("REQUEST_HEADERS"),
            help="'Name: value' header on every request (repeatable).",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", envvar=_env("TIMEOUT"), help="Seconds to wait for each answer."),
    ] = 60.0,
    batch_interval: Annotated[
        float,
        typer.Option(
            "--batch-interval",
            envvar=_env("BATCH_INTERVAL"),
            help="Minimum seconds between requests of each worker.",
        ),
    ] = 0.0,
    batch_jitter: Annotated[
        float,
        typer.Option(
            "--batch-jitter",
            envvar=_env("BATCH_JITTER"),
            help="Random extra seconds (up to) added to the interval.",
        ),
    ] = 0.0,
    use_ssl: Annotated[
        bool, typer.Option("--use-ssl", envvar=_env("USE_SSL"), help="Use TLS.")
    ] = False,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", envvar=_env("INSECURE"), help="Do not verify TLS certificates."),
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar=[_env("TOKEN"), "MLPACK_TOKEN"],
            help="API key sent as 'Authorization: Bearer KEY' (REST) or metadata (gRPC).",
        ),
    ] = None,
    ca: Annotated[
        str | None,
        typer.Option("--ca", envvar=_env("CA"), help="PEM CA of the server (implies TLS)."),
    ] = None,
    cert: Annotated[
        str | None,
        typer.Option("--cert", envvar=_env("CERT"), help="PEM client certificate (mutual TLS)."),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", envvar=_env("KEY"), help="PEM key of the client certificate."),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted job.")] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Send again only the lines whose records are errors; replace them in place.",
        ),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start again over an unfinished job.")
    ] = False,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bar (default: on a terminal)."),
    ] = None,
    verbose: Annotated[
        int, typer.Option("-v", "--verbose", count=True, help="-v: failed lines; -vv: every retry.")
    ] = 0,
) -> None:
    """Send every request of a JSONL file to V2 servers; write responses in input order."""
    from ..infer.job import InferOptions, JobInterrupted, run_job
    from ..infer.progress import LogReporter, Reporter, RichReporter

    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
        format="%(asctime)s %(levelname)-5s %(message)s",
        stream=sys.stderr,
    )
    if not input_data_path.is_file():
        typer.secho(f"Error: input file {input_data_path} not found", err=True, fg=typer.colors.RED)
        raise typer.Exit(USAGE_ERROR)
    if retry_failed and (resume or overwrite):
        typer.secho(
            "Error: --retry-failed works on a finished job; it cannot be combined with "
            "--resume or --overwrite",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(USAGE_ERROR)
    headers = _parse_headers(request_headers or [])
    if token:
        headers["Authorization"] = f"Bearer {token}"
    options = InferOptions(
        urls=url or [DEFAULT_URLS[transport.value]],
        model_name=model_name,
        input_path=input_data_path,
        output_path=output_data_path,
        model_version=model_version,
        workers=workers,
        retries=retries,
        retry_for=retry_for,
        batch_size=batch_size,
        binary=binary_data,
        transport=transport.value,
        headers=headers,
        timeout=timeout,
        batch_interval=batch_interval,
        batch_jitter=batch_jitter,
        use_ssl=use_ssl,
        insecure=insecure,
        ca=ca,
        cert=cert,
        key=key,
        resume=resume,
        overwrite=overwrite,
        retry_failed=retry_failed,
    )
    show_bar = sys.stderr.isatty() if progress is None else progress
    reporter: Reporter = RichReporter() if show_bar else LogReporter()
    with exit_on_error(USAGE_ERROR):
        try:
            stats = asyncio.run(_run_interruptible(run_job(options, reporter)))
        except JobInterrupted as stopped:
            advice = (
                f"{output_data_path} is unchanged; run the same command again to retry"
                if retry_failed
                else "Run the same command with --resume to continue."
            )
            typer.secho(
                f"Interrupted: {stopped.message} ({stopped.stats.summary()}). {advice}",
                err=True,
                fg=typer.colors.YELLOW,
            )
            raise typer.Exit(INTERRUPTED) from None
    failed = stats.failed_in_output
    colour = typer.colors.RED if failed else typer.colors.GREEN
    typer.secho(f"Done: {stats.summary()}", err=True, fg=colour)
    if failed:
        from ..infer.output import sidecar_paths

        typer.secho(
            f"{failed} line(s) of {output_data_path} are error records, listed in "
            f"{sidecar_paths(output_data_path)[0]}; send them again with --retry-failed",
            err=True,
        )
        raise typer.Exit(LINES_FAILED)


def _parse_headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            typer.secho(
                f"Error: header {value!r} is not 'Name: value'", err=True, fg=typer.colors.RED
            )
            raise typer.Exit(USAGE_ERROR)
        headers[name.strip()] = content.strip()
    return headers


async def _run_interruptible(job: Any) -> Any:
    """Run ``job``; SIGINT / SIGTERM cancel it (it saves its progress) for this call only."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(job)
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, task.cancel)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        return await task
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
