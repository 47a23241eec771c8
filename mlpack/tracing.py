"""OpenTelemetry tracing: off (and free) unless configured; ``tracer()`` for model code.

Install ``mlpack[tracing]`` and set ``tracing_server`` (MLServer's setting: the OTLP
collector's ``host:port``) or the standard ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``. The
server then opens a span per request and child spans per stage. Nothing here imports
OpenTelemetry until tracing is switched on, and every hook in the hot path checks the
module-level ``active`` flag first, so tracing off costs one attribute read.

A model opens its own spans as children of ``predict``::

    with mlpack.tracer().start_as_current_span("feature lookup"):
        ...

Worker processes (and environment workers) inherit the configuration through
``MLPACK_TRACING_*`` environment variables the server sets before starting them; the
trace context crosses the process boundary with each traced request.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

# True once ``configure`` installed a tracer provider; hot-path hooks check it first.
active = False
_tracer: Any = None
_provider: Any = None

_ENV_ENDPOINT = "MLPACK_TRACING_ENDPOINT"
_ENV_PROTOCOL = "MLPACK_TRACING_PROTOCOL"
_ENV_RATIO = "MLPACK_TRACING_SAMPLING_RATIO"
_ENV_SERVICE = "MLPACK_TRACING_SERVICE_NAME"

GRPC = "grpc"
HTTP = "http/protobuf"
PROTOCOLS = (GRPC, HTTP)


def resolve_endpoint(tracing_server: str | None) -> str | None:
    """The OTLP endpoint: ``tracing_server`` or the standard ``OTEL_*`` variables (None: off)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    return (
        tracing_server
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or None
    )


def resolve_protocol(protocol: str | None) -> str:
    """``protocol`` or ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` (default ``grpc``)."""
    value = (
        protocol
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or GRPC
    )
    if value == "http/json":
        value = HTTP
    if value not in PROTOCOLS:
        from .errors import InvalidSettings

        raise InvalidSettings(f"tracing protocol must be one of {', '.join(PROTOCOLS)}: {value!r}")
    return value


def configure(
    endpoint: str,
    protocol: str = GRPC,
    sampling_ratio: float = 1.0,
    service_name: str = "mlpack",
    export_to_workers: bool = True,
) -> None:
    """Export spans over OTLP (``grpc`` or ``http/protobuf``) to ``endpoint``; sample a
    ``sampling_ratio`` share of traces that have no sampled parent.

    With ``export_to_workers``, worker processes started afterwards do the same.
    """
    global active, _tracer, _provider
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError:
        from .errors import InvalidSettings

        raise InvalidSettings(
            "tracing is configured but OpenTelemetry is not installed: "
            "pip install 'mlpack[tracing]'"
        ) from None
    exporter = _exporter(endpoint, protocol)
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        sampler=ParentBased(TraceIdRatioBased(sampling_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    _provider = provider
    _tracer = provider.get_tracer("mlpack")
    active = True
    if export_to_workers:
        os.environ[_ENV_ENDPOINT] = endpoint
        os.environ[_ENV_PROTOCOL] = protocol
        os.environ[_ENV_RATIO] = repr(sampling_ratio)
        os.environ[_ENV_SERVICE] = service_name


def configure_from_environment() -> bool:
    """In a worker process: configure tracing as the server did (returns whether it is on)."""
    if active:
        return True
    endpoint = os.environ.get(_ENV_ENDPOINT)
    if not endpoint:
        return False
    from .errors import InvalidSettings

    try:
        configure(
            endpoint,
            os.environ.get(_ENV_PROTOCOL, GRPC),
            float(os.environ.get(_ENV_RATIO, "1.0")),
            os.environ.get(_ENV_SERVICE, "mlpack"),
            export_to_workers=False,
        )
    except InvalidSettings as error:  # e.g. an environment without OpenTelemetry
        import logging

        logging.getLogger("mlpack.tracing").warning("no tracing in this process: %s", error)
        del os.environ[_ENV_ENDPOINT]  # do not try again
        return False
    return True


def _exporter(endpoint: str, protocol: str) -> Any:
    if protocol == HTTP:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HTTPExporter,
        )

        url = endpoint if "://" in endpoint else f"http://{endpoint}"
        if not url.rstrip("/").endswith("/v1/traces"):
            url = url.rstrip("/") + "/v1/traces"
        return HTTPExporter(endpoint=url)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    insecure = not endpoint.startswith("https://")
    return OTLPSpanExporter(endpoint=endpoint, insecure=insecure)


def shutdown() -> None:
    """Flush and stop exporting (server shutdown)."""
    global active, _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    active, _tracer, _provider = False, None, None


class _NoSpan:
    """Stands in for a span when OpenTelemetry is not installed."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def add_event(self, name: str, attributes: Any = None) -> None:
        pass

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _NoTracer:
    """``tracer()`` without OpenTelemetry installed: spans that record nothing."""

    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> _NoSpan:
        return _NoSpan()

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> _NoSpan:
        return _NoSpan()


def tracer(name: str = "mlpack.model") -> Any:
    """An OpenTelemetry ``Tracer`` for model code (no-op when tracing is off or not installed)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return _NoTracer()
    return trace.get_tracer(name)


# -- helpers for the server and engine hooks (call only when ``active``) ----------------

_OFF = contextlib.nullcontext()


def stage(name: str, attributes: Mapping[str, Any] | None = None) -> Any:
    """A child span named ``name`` when tracing is on; a shared no-op context otherwise."""
    if not active:
        return _OFF
    return _tracer.start_as_current_span(name, attributes=attributes)


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None, **kwargs: Any) -> Iterator[Any]:
    """A child span of the current one; an exception marks it as an error."""
    with _tracer.start_as_current_span(name, attributes=attributes, **kwargs) as current:
        yield current


def start_span(name: str, **kwargs: Any) -> Any:
    """A span the caller ends (for stages that start and end in different places)."""
    return _tracer.start_span(name, **kwargs)


def extract(carrier: Mapping[str, str]) -> Any:
    """The context a W3C ``traceparent`` (in ``carrier``) names."""
    from opentelemetry.propagate import extract as otel_extract

    return otel_extract(carrier)


def inject() -> dict[str, str]:
    """The current context as ``traceparent`` / ``tracestate`` headers."""
    from opentelemetry.propagate import inject as otel_inject

    carrier: dict[str, str] = {}
    otel_inject(carrier)
    return carrier


def current_context() -> Any:
    from opentelemetry import context

    return context.get_current()


def span_context_of(ctx: Any) -> Any:
    """The span context active in ``ctx`` (to link a batch span to its member requests)."""
    from opentelemetry import trace

    return trace.get_current_span(ctx).get_span_context()


@contextlib.contextmanager
def attached(ctx: Any) -> Iterator[None]:
    """Make ``ctx`` the current context inside the block."""
    from opentelemetry import context

    token = context.attach(ctx)
    try:
        yield
    finally:
        context.detach(token)


def link(span_context: Any) -> Any:
    from opentelemetry.trace import Link

    return Link(span_context)


def server_kind() -> Any:
    from opentelemetry.trace import SpanKind

    return SpanKind.SERVER


def client_kind() -> Any:
    from opentelemetry.trace import SpanKind

    return SpanKind.CLIENT


def set_error(current: Any, message: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    current.set_status(Status(StatusCode.ERROR, message))
