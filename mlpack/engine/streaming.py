"""Driving a model's stream: the one home for how ``predict_stream`` is called.

``drive_stream(model, requests)`` turns a model and an async iterator of requests into
an async iterator of checked responses, wherever the model runs (``LocalRunner`` on the
model's thread, the worker child in its process):

- ``predict_stream`` may be an async generator (``async def`` with ``yield``), an
  ``async def`` returning an async iterator, or a plain generator. A plain generator
  receives a plain iterator of requests, read ahead one request at a time, and runs
  where ``drive_stream`` is iterated (the model's thread, never the server's loop);
- every item must be an ``InferenceResponse`` (else ``ModelError`` naming the model);
  an unexpected exception from the model becomes ``ModelError``, an ``MLPackError``
  passes through unchanged;
- closing the returned iterator (``aclose``, or cancelling the task iterating it)
  closes the model's generator (``aclose``/``close``), so its ``finally`` blocks run
  and it produces nothing more;
- a model that does not override ``MLModel.predict_stream`` raises
  ``StreamingUnsupported`` before any of its code runs.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..errors import MLPackError, ModelError, StreamingUnsupported
from ..model import MLModel
from ..types import InferenceRequest, InferenceResponse
from .failures import attach_traceback


def supports_streaming(model: MLModel) -> bool:
    """Whether ``model`` overrides ``MLModel.predict_stream``."""
    return getattr(type(model), "predict_stream", None) is not MLModel.predict_stream


async def drive_stream(
    model: MLModel, requests: AsyncIterator[InferenceRequest]
) -> AsyncIterator[InferenceResponse]:
    """Run ``model.predict_stream`` over ``requests``; yield its checked responses."""
    if not supports_streaming(model):
        raise StreamingUnsupported(model.name)
    reader = _ReadAhead(requests)
    try:
        source: Any = reader.iterator() if _wants_sync(model) else requests
        produced: Any = model.predict_stream(source)
        if inspect.isawaitable(produced):  # ``async def`` returning an async iterator
            produced = await produced
    except MLPackError:
        raise
    except Exception as error:
        raise _failed(model, error) from error
    items: Any
    if hasattr(produced, "__anext__"):
        items = _async_items(model, produced)
    elif hasattr(produced, "__next__"):
        items = _sync_items(model, produced, reader)
    else:
        raise ModelError(
            f"model '{model.name}': predict_stream() returned {type(produced).__name__}, "
            "expected an (async) generator of InferenceResponse"
        )
    try:
        async for response in items:
            yield response
    finally:
        await items.aclose()  # ``async for`` leaves an unfinished generator open


def _wants_sync(model: MLModel) -> bool:
    method = model.predict_stream
    return not (inspect.isasyncgenfunction(method) or inspect.iscoroutinefunction(method))


async def _async_items(model: MLModel, produced: Any) -> AsyncIterator[InferenceResponse]:
    try:
        while True:
            try:
                item = await produced.__anext__()
            except StopAsyncIteration:
                return
            except MLPackError:
                raise
            except Exception as error:
                raise _failed(model, error) from error
            yield checked_item(model, item)
    finally:
        close = getattr(produced, "aclose", None)
        if close is not None:
            await close()


async def _sync_items(
    model: MLModel, produced: Iterator[Any], reader: _ReadAhead
) -> AsyncIterator[InferenceResponse]:
    try:
        while True:
            await reader.fill()  # the request the generator may ask for next, if any
            try:
                item = next(produced)  # runs the model's code here, on the model's thread
            except StopIteration:
                return
            except MLPackError:
                raise
            except Exception as error:
                raise _failed(model, error) from error
            yield checked_item(model, item)
    finally:
        close = getattr(produced, "close", None)
        if close is not None:
            close()


class _ReadAhead:
    """Feeds a plain generator from an async iterator: one request read ahead at a time."""

    def __init__(self, requests: AsyncIterator[InferenceRequest]) -> None:
        self._requests = requests
        self._buffer: deque[InferenceRequest] = deque()
        self._exhausted = False

    async def fill(self) -> None:
        if self._buffer or self._exhausted:
            return
        try:
            self._buffer.append(await self._requests.__anext__())
        except StopAsyncIteration:
            self._exhausted = True

    def iterator(self) -> Iterator[InferenceRequest]:
        return _Requests(self)


class _Requests:
    """The plain iterator a plain-generator ``predict_stream`` reads its requests from."""

    def __init__(self, source: _ReadAhead) -> None:
        self._source = source

    def __iter__(self) -> _Requests:
        return self

    def __next__(self) -> InferenceRequest:
        source = self._source
        if source._buffer:
            return source._buffer.popleft()
        if source._exhausted:
            raise StopIteration
        raise RuntimeError(
            "a plain-generator predict_stream() may read one request per response it "
            "yields; write it as an async generator to read requests freely"
        )


def checked_item(model: MLModel, item: Any) -> InferenceResponse:
    """``item`` if it is an ``InferenceResponse``; else the ``ModelError`` saying so."""
    if not isinstance(item, InferenceResponse):
        raise ModelError(
            f"model '{model.name}': predict_stream() yielded {type(item).__name__}, "
            "expected InferenceResponse"
        )
    return item


def _failed(model: MLModel, error: Exception) -> ModelError:
    failure = ModelError(f"model '{model.name}' failed while streaming: {error}")
    attach_traceback(failure, error)
    return failure
