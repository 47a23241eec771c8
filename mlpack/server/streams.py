"""REST streaming: ``infer_stream`` and the generate extension, over server-sent events.

- ``POST /v2/models/{m}[/versions/{v}]/infer_stream``: an inference request in (JSON),
  ``text/event-stream`` out, one ``data: <inference response JSON>`` event per response
  the model yields.
- ``POST .../generate``: ``{"text_input": ..., "parameters": {...}}`` in, one JSON object
  out (the model's ``predict``); ``POST .../generate_stream``: the same request, one
  ``data:`` event per response of the model's ``predict_stream``. The mapping between
  that JSON and tensors is ``generate.py``'s.

Errors before the first response (unknown model, bad request, a model that cannot
stream, a failure before it yielded anything) are ordinary JSON errors with their
status. Once the ``200`` is out, an error becomes one ``data: {"error": ...}`` event and
the stream closes cleanly. A client that disconnects stops the model's generator; so does
one that stops reading for ``stream_stall_timeout`` (its connection is then dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..codecs.bytes_json import bytes_outputs_as_text
from ..engine.deadlines import parse_timeout_header
from ..engine.registry import ModelRegistry
from ..engine.stalls import StallGuard
from ..errors import MLPackError, StreamStalled, release
from ..types import InferenceRequest, InferenceResponse, ResponseOutput
from .disclosure import public_message
from .disconnect import unless_disconnected
from .generate import generate_body, generate_request
from .limits import ABORT_EXTENSION
from .media import check_content_type
from .rest_io import (
    TIMEOUT_HEADER,
    JSONBytesResponse,
    attach_headers,
    json_default,
    model_path,
    parse_inference_request,
)

logger = logging.getLogger("mlpack.rest")

EVENT_STREAM = "text/event-stream; charset=utf-8"
# Bytes of events that may wait while the one before them is written (one always fits).
OUTBOX_BYTES = 64 * 1024
Encode = Callable[[InferenceResponse], dict[str, Any]]
Handover = Callable[[Awaitable[None]], Awaitable[None]]  # a send within the stall limit


def inference_response_body(response: InferenceResponse) -> dict[str, Any]:
    """An ``InferenceResponse`` as the protocol's JSON object (BYTES as text).

    The same object ``model_dump(exclude_none=True)`` gives, built field by field: this
    runs once per streamed chunk, and pydantic's walk costs more than the chunk itself.
    """
    bytes_outputs_as_text(response.outputs)
    if type(response) is not InferenceResponse:  # a subclass may add fields: ask pydantic
        body = response.model_dump(exclude_none=True)
    else:
        body = {"model_name": response.model_name}
        if response.model_version is not None:
            body["model_version"] = response.model_version
        if response.id is not None:
            body["id"] = response.id
        if response.parameters is not None:
            body["parameters"] = response.parameters.model_dump(exclude_none=True)
        body["outputs"] = [_output_body(output) for output in response.outputs]
    if body.get("parameters") == {}:
        del body["parameters"]
    return body


def _output_body(output: ResponseOutput) -> dict[str, Any]:
    if type(output) is not ResponseOutput or isinstance(output.data, dict):
        return output.model_dump(exclude_none=True)  # exclude_none reaches into a dict
    body: dict[str, Any] = {
        "name": output.name,
        "shape": output.shape,
        "datatype": output.datatype,
    }
    if output.parameters is not None:
        body["parameters"] = output.parameters.model_dump(exclude_none=True)
    if output.data is not None:
        body["data"] = output.data
    return body


def event(payload: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``payload`` as JSON (a single ``data:`` line)."""
    data = orjson.dumps(payload, default=json_default, option=orjson.OPT_SERIALIZE_NUMPY)
    return b"data: " + data + b"\n\n"


class EventStreamResponse(Response):
    """``text/event-stream``: ``first`` then the rest of ``stream``, one event each.

    Events the stream has already produced when the socket is free leave in one write
    (``_Outbox``); none waits for a later one. The response starts only after the first
    response exists (so earlier errors are plain JSON errors). While it streams, a task
    watches for the client leaving; when it does, the stream is closed, which closes the
    model's generator. Every write goes out through ``guard`` (``stream_stall_timeout``):
    a client that stays connected but reads nothing for that long has its stream closed
    the same way and its connection dropped.
    """

    media_type = EVENT_STREAM

    def __init__(
        self,
        first: InferenceResponse | None,
        stream: AsyncIterator[InferenceResponse],
        encode: Encode,
        generic_errors: bool = False,
        guard: StallGuard | None = None,
    ) -> None:
        # No body and so no content-length: the events go out as they come (chunked).
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no"})
        self._first = first
        self._stream = stream
        self._encode = encode
        self._generic = generic_errors
        self._guard = guard or StallGuard("", None, None)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        sender = asyncio.ensure_future(self._send_events(send))
        watcher = asyncio.ensure_future(_client_gone(receive))
        try:
            await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not sender.done():  # the client left: stop producing
                sender.cancel()
                with _quiet():
                    await sender
            await _close(self._stream)
        if not sender.done() or sender.cancelled():
            return
        if isinstance(sender.exception(), StreamStalled):
            await _drop(scope)  # nothing more can reach a client that reads nothing
            return
        sender.result()  # a bug in sending surfaces in the server log
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_events(self, send: Any) -> None:
        handover = self._guard.handover
        start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
        await handover(send(start))
        outbox = _Outbox(OUTBOX_BYTES)
        writer = asyncio.ensure_future(outbox.write_to(send, handover))
        try:
            await self._fill(outbox)
            outbox.close()
            await writer
        finally:
            if not writer.done():
                writer.cancel()
            with _quiet():
                await writer  # a failed writer's error was raised by put: mark it seen

    async def _fill(self, outbox: _Outbox) -> None:
        stream, encode = self._stream, self._encode
        first, self._first = self._first, None
        try:
            if first is not None:
                await outbox.put(event(encode(first)))
            del first
            async for response in stream:
                body = event(encode(response))
                del response
                await outbox.put(body)
        except StreamStalled:  # the writer gave up on the client: nothing more to send
            raise
        except MLPackError as error:
            message = public_message(error, self._generic)
            release(error)
            await outbox.put(event({"error": message}))
        except Exception as error:  # a bug: tell the client, keep serving, log it
            logger.error("unhandled error while streaming", exc_info=error)
            await outbox.put(event({"error": f"internal error: {error!r}"}))


class _Outbox:
    """Events on their way to the client: added one at a time, written together.

    The sender ``put``s each event as the stream yields it; ``write_to`` sends every event
    waiting at that moment as one body, so the responses a model has already produced
    leave in one write instead of one each, and nothing waits for more to come. At most
    ``limit`` bytes wait (one event always fits): beyond that ``put`` waits for the
    write, which itself waits for the client to read (back-pressure).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self._closed = False
        self._error: BaseException | None = None
        self._ready = asyncio.Event()  # something to write, or closed
        self._room = asyncio.Event()  # the waiting events were taken, or the writer failed

    async def put(self, body: bytes) -> None:
        while self._size >= self.limit and self._error is None:
            self._room.clear()
            await self._room.wait()
        if self._error is not None:
            raise self._error
        self._parts.append(body)
        self._size += len(body)
        self._ready.set()

    def close(self) -> None:
        """No more events: ``write_to`` returns once the waiting ones are sent."""
        self._closed = True
        self._ready.set()

    async def write_to(self, send: Any, handover: Handover) -> None:
        try:
            while True:
                if not self._parts:
                    if self._closed:
                        return
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                parts, self._parts, self._size = self._parts, [], 0
                self._room.set()
                await handover(_part(send, parts[0] if len(parts) == 1 else b"".join(parts)))
                del parts
        except BaseException as error:
            self._error = error
            self._room.set()
            raise


async def _part(send: Any, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _drop(scope: Any) -> None:
    """Drop the connection at once (the HTTP protocol's abort, when it offers one)."""
    abort = (scope.get("extensions") or {}).get(ABORT_EXTENSION)
    if abort is not None:
        abort()
        await asyncio.sleep(0)  # let the protocol see the connection gone before we return


def _quiet() -> contextlib.suppress:
    """Suppress the cancellation (or any error) of a task being torn down."""
    return contextlib.suppress(asyncio.CancelledError, Exception)


async def _client_gone(receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _close(stream: AsyncIterator[Any]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        with _quiet():
            await close()


async def _one(request: InferenceRequest) -> AsyncIterator[InferenceRequest]:
    yield request


class StreamEndpoints:
    """``infer_stream``, ``generate`` and ``generate_stream`` over one registry."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    async def infer_stream(self, request: Request) -> Response:
        check_content_type(request.headers.get("content-type"))
        inference_request = parse_inference_request(await request.body())
        return await self._stream(request, inference_request, inference_response_body)

    async def generate(self, request: Request) -> Response:
        name, version = model_path(request)
        check_content_type(request.headers.get("content-type"))
        entry = self.registry.get(name, version)
        inference_request = generate_request(await request.body(), entry.metadata)
        attach_headers(inference_request, request)
        timeout = parse_timeout_header(request.headers.get(TIMEOUT_HEADER))
        work = self.registry.infer(name, version, inference_request, timeout)
        response = await unless_disconnected(request, work)
        return JSONBytesResponse(generate_body(response))

    async def generate_stream(self, request: Request) -> Response:
        name, version = model_path(request)
        check_content_type(request.headers.get("content-type"))
        entry = self.registry.get(name, version)
        inference_request = generate_request(await request.body(), entry.metadata)
        return await self._stream(request, inference_request, generate_body)

    async def _stream(
        self, request: Request, inference_request: InferenceRequest, encode: Encode
    ) -> Response:
        name, version = model_path(request)
        attach_headers(inference_request, request)
        timeout = parse_timeout_header(request.headers.get(TIMEOUT_HEADER))
        stream = self.registry.infer_stream(name, version, _one(inference_request), timeout)
        try:
            first: InferenceResponse | None = await unless_disconnected(request, stream.__anext__())
        except StopAsyncIteration:
            first = None  # the model yielded nothing: an empty, well-formed event stream
        except BaseException:
            await _close(stream)
            raise
        generic = bool(getattr(request.app.state, "generic_model_errors", False))
        guard = self.registry.stall_guard(name, version)
        return EventStreamResponse(first, stream, encode, generic, guard)

    def routes(self) -> list[Route]:
        model = "/v2/models/{model_name}"
        version = model + "/versions/{model_version}"
        routes = []
        for suffix, endpoint in (
            ("/infer_stream", self.infer_stream),
            ("/generate", self.generate),
            ("/generate_stream", self.generate_stream),
        ):
            routes.append(Route(model + suffix, endpoint, methods=["POST"]))
            routes.append(Route(version + suffix, endpoint, methods=["POST"]))
        return routes
