"""Text generation, token by token: ``transformers``' ``TextIteratorStreamer`` behind an
async iterator.

``model.generate`` runs on a thread of its own and puts each piece of text in a bounded
queue (``STREAM_QUEUE_SIZE``): when the reader is slower, generation waits for it, so a
stream holds a few pieces at most. The reader takes pieces as they come, off the event
loop. Closing the iterator (the client went away) sets a flag a stopping criterion reads
at every step, so generation stops at its next token and its thread ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import AsyncIterator
from typing import Any

from mlpack.errors import ModelError

logger = logging.getLogger("mlpack.runtimes.huggingface")

# Pieces of text waiting for the reader, at most; generation waits when it is full.
STREAM_QUEUE_SIZE = 4
# Seconds a blocked put waits before it looks at the stop flag again.
_PUT_POLL = 0.05
_END = object()


def _streamer_class() -> Any:
    from transformers import StoppingCriteria, TextIteratorStreamer

    class BoundedStreamer(TextIteratorStreamer):
        """A ``TextIteratorStreamer`` with a bounded queue that gives up once stopped."""

        def __init__(self, tokenizer: Any, stop: threading.Event, **options: Any) -> None:
            super().__init__(tokenizer, **options)
            self.text_queue: queue.Queue[Any] = queue.Queue(maxsize=STREAM_QUEUE_SIZE)
            self._stop = stop

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                self._put(text)
            if stream_end:
                self._put(self.stop_signal)

        def _put(self, item: Any) -> None:
            while not self._stop.is_set():
                try:
                    self.text_queue.put(item, timeout=_PUT_POLL)
                    return
                except queue.Full:
                    continue

    class StopWhenSet(StoppingCriteria):
        """Stop generating once ``stop`` is set; count the steps taken."""

        def __init__(self, stop: threading.Event) -> None:
            self.stop = stop
            self.steps = 0

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
            self.steps += 1
            return self.stop.is_set()

    return BoundedStreamer, StopWhenSet


async def stream_text(
    model_name: str,
    pipeline: Any,
    prompt: str,
    options: dict[str, Any],
) -> AsyncIterator[str]:
    """The new text ``pipeline``'s model generates after ``prompt``, piece by piece.

    ``options`` are generation options (``max_new_tokens``, ``do_sample``, ...);
    ``return_full_text`` streams the prompt first.
    """
    from transformers import StoppingCriteriaList

    BoundedStreamer, StopWhenSet = _streamer_class()
    options = dict(options)
    skip_prompt = not options.pop("return_full_text", False)
    tokenizer, model = pipeline.tokenizer, pipeline.model
    encoded = tokenizer(prompt, return_tensors="pt").to(model.device)
    stop = threading.Event()
    streamer = BoundedStreamer(tokenizer, stop, skip_prompt=skip_prompt, skip_special_tokens=True)
    criterion = StopWhenSet(stop)
    failure: list[BaseException] = []

    def generate() -> None:
        try:
            model.generate(
                **encoded,
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([criterion]),
                pad_token_id=tokenizer.pad_token_id,
                **options,
            )
        except BaseException as error:  # reported to the reader, never lost on this thread
            failure.append(error)
            streamer.on_finalized_text("", stream_end=True)

    thread = threading.Thread(target=generate, name=f"mlpack-generate-{model_name}", daemon=True)
    loop = asyncio.get_running_loop()
    limit = options.get("max_new_tokens")
    pieces, finished = 0, False
    thread.start()
    try:
        while True:
            piece: Any = await loop.run_in_executor(None, next, streamer, _END)
            if piece is _END:
                finished = True
                break
            pieces += 1
            yield piece
        if failure:
            raise ModelError(f"model '{model_name}' failed while generating: {failure[0]}")
    finally:
        stop.set()
        thread.join()  # generate() returns at its next step: the stop flag is read there
        with contextlib.suppress(queue.Full):  # wakes a read still waiting (cancelled reader)
            streamer.text_queue.put_nowait(streamer.stop_signal)
        if not finished:
            logger.info(
                "model '%s': stream closed after %d piece(s); generation stopped at step %d "
                "of at most %s",
                model_name,
                pieces,
                criterion.steps,
                limit,
            )
