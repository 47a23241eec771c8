"""gRPC ``ModelStreamInfer``: each request on the stream gets its own model stream.

Every ``ModelInferRequest`` read from the call starts one ``registry.infer_stream`` with
that request; its responses go back as ``ModelStreamInferResponse`` messages carrying the
request's id, as the model yields them. Requests run concurrently (at most
``MAX_REQUESTS_PER_CALL`` per call; reading further requests waits), so responses of
different requests may interleave; those of one request keep their order. An error ends
only its own request: it is sent as ``error_message`` (with the request's id, model name
and version in ``infer_response``) and the call stays open. With the request parameter
``triton_enable_empty_final_response`` (tritonclient's ``enable_empty_final_response``)
every response carries ``triton_final_response`` and each request ends with an empty
response whose flag is true, so a client knows when a request is complete.

Outgoing messages wait in a bounded queue: a client that reads slowly makes the model
streams wait (back-pressure) rather than the server buffer. A client that stops reading
altogether: when a response cannot enter that queue within the model's
``stream_stall_timeout`` (``engine/stalls.py``), the whole call is abandoned — every model
stream of the call is closed and the call ends with ``DEADLINE_EXCEEDED`` (nothing more can
reach a client that reads nothing, so no per-request ``error_message`` is attempted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from ..engine.registry import ModelRegistry
from ..errors import InvalidRequest, MLPackError, ResourceExhausted, StreamStalled, release
from ..proto import convert
from ..proto import inference_pb2 as pb
from ..types import InferenceRequest, Parameters
from .disclosure import public_message
from .grpc_handlers import Undecodable

logger = logging.getLogger("mlpack.grpc")

# Requests of one call served at once; the next request is read when one finishes.
MAX_REQUESTS_PER_CALL = 256
# Messages waiting to be written to the client, per call.
OUTGOING_BUFFER = 16
FINAL_FLAG = "triton_final_response"
ENABLE_FINAL = "triton_enable_empty_final_response"

_END = object()


async def _one(request: InferenceRequest) -> AsyncIterator[InferenceRequest]:
    yield request


class StreamCall:
    """One ``ModelStreamInfer`` call.

    Parameters:
        registry: the models served.
        context: the call's context (deadline, metadata).
        max_message_length: the largest message this server may send, in bytes.
        generic_errors: a model's own failure answers a fixed sentence (``model_error_detail``).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        context: grpc.aio.ServicerContext,
        max_message_length: int,
        generic_errors: bool,
    ) -> None:
        self.registry = registry
        self.context = context
        self.max_message_length = max_message_length
        self.generic_errors = generic_errors
        self._out: asyncio.Queue[Any] = asyncio.Queue(OUTGOING_BUFFER)
        self._slots = asyncio.Semaphore(MAX_REQUESTS_PER_CALL)
        self._tasks: set[asyncio.Task[None]] = set()
        self._headers = dict(context.invocation_metadata() or ())
        self.stalled: StreamStalled | None = None
        self._ending: asyncio.Future[None] | None = None

    async def run(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """The messages to send, as they are produced."""
        reader = asyncio.ensure_future(self._read(requests))
        try:
            while True:
                item = await self._out.get()
                if item is _END or self.stalled is not None:
                    break
                yield item
                if self.stalled is not None:
                    break
            if self.stalled is None:
                await reader  # a failure reading the call's requests ends the call
        finally:
            reader.cancel()
            for task in list(self._tasks):
                task.cancel()

    async def _read(self, requests: AsyncIterator[Any]) -> None:
        try:
            async for message in requests:
                await self._slots.acquire()
                task = asyncio.ensure_future(self._serve(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            while self._tasks:  # the client is done sending: finish what it asked for
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
        except asyncio.CancelledError:
            raise
        except BaseException:
            await self._out.put(_END)
            raise
        await self._out.put(_END)

    async def _serve(self, message: Any) -> None:
        try:
            await self._stream(message)
        except StreamStalled as error:
            self._abandon(error)
        except MLPackError as error:
            text = public_message(error, self.generic_errors)
            release(error)
            await self._out.put(self._error(message, text))
        except Exception as error:  # a bug: answer it on this request, keep the call open
            logger.exception("unhandled error in ModelStreamInfer")
            await self._out.put(self._error(message, f"internal error: {error!r}"))
        finally:
            self._slots.release()

    async def _stream(self, message: Any) -> None:
        if isinstance(message, Undecodable):
            raise InvalidRequest(message.message)
        inference_request = convert.model_infer_request_to_types(message)
        if inference_request.parameters is None:
            inference_request.parameters = Parameters(headers=self._headers)
        else:
            inference_request.parameters.headers = self._headers
        final = bool((inference_request.parameters.model_extra or {}).get(ENABLE_FINAL))
        raw = bool(message.raw_input_contents)
        handover = self.registry.stall_guard(
            message.model_name, message.model_version or None
        ).handover
        stream = self.registry.infer_stream(
            message.model_name,
            message.model_version or None,
            _one(inference_request),
            self.context.time_remaining(),
        )
        try:
            async for response in stream:
                reply = convert.types_to_model_infer_response(response, raw=raw)
                del response
                if final:
                    reply.parameters[FINAL_FLAG].bool_param = False
                size = reply.ByteSize()
                if size > self.max_message_length:
                    raise ResourceExhausted(
                        f"model '{message.model_name}': a response is {size} bytes, more than "
                        f"grpc_max_message_length ({self.max_message_length} bytes)"
                    )
                await handover(self._out.put(pb.ModelStreamInferResponse(infer_response=reply)))
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        if final:
            last = pb.ModelInferResponse(
                model_name=message.model_name, model_version=message.model_version, id=message.id
            )
            last.parameters[FINAL_FLAG].bool_param = True
            await handover(self._out.put(pb.ModelStreamInferResponse(infer_response=last)))

    def _abandon(self, error: StreamStalled) -> None:
        """The client stopped reading: close every stream of the call and end it with
        ``DEADLINE_EXCEEDED`` (``run`` stops once grpc's blocked write returns)."""
        if self.stalled is not None:
            return
        self.stalled = error
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        # The handler is blocked writing to a client that reads nothing: end the call from
        # here (the status goes out as trailers; the blocked write then fails).
        self._ending = asyncio.ensure_future(self._end_call(error))

    async def _end_call(self, error: StreamStalled) -> None:
        with contextlib.suppress(grpc.aio.AbortError, Exception):
            await self.context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(error))

    def _error(self, message: Any, text: str) -> Any:
        if isinstance(message, Undecodable):  # nothing to echo back
            return pb.ModelStreamInferResponse(error_message=text)
        about = pb.ModelInferResponse(
            model_name=message.model_name, model_version=message.model_version, id=message.id
        )
        return pb.ModelStreamInferResponse(error_message=text, infer_response=about)
