"""Making a model's failures visible: tracebacks that cross processes, rate-limited logs.

A model's exception becomes ``ModelError`` / ``ModelLoadError`` (``engine.invocation``);
``attach_traceback`` stores the original traceback as text on that error, so it survives
pickling from a worker process. ``FailureLog`` writes one ERROR line per failed
prediction (model, version, request id, traceback), at most ``burst`` lines per model per
``window`` seconds; the next line written says how many were suppressed meanwhile.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("mlpack.model")

_TRACEBACK = "traceback"


def attach_traceback(error: BaseException, cause: BaseException) -> BaseException:
    """Store ``cause``'s formatted traceback on ``error`` (kept when pickled); return it."""
    text = "".join(traceback.format_exception(cause)).rstrip()
    error.__dict__[_TRACEBACK] = text
    return error


def traceback_text(error: BaseException) -> str:
    """The model's traceback behind ``error`` (attached or from ``__cause__``), or ``""``."""
    text = error.__dict__.get(_TRACEBACK)
    if isinstance(text, str):
        return text
    cause = error.__cause__
    if cause is not None:
        return "".join(traceback.format_exception(cause)).rstrip()
    return ""


class FailureLog:
    """Per-model rate-limited ERROR lines for failed predictions.

    Parameters:
        burst: lines written per model per window (further failures are counted).
        window: seconds in a window.
        clock: time source (tests pass their own).
    """

    def __init__(
        self,
        burst: int = 5,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.window = window
        self._clock = clock
        # model key → [window start, lines written in window, suppressed since last line]
        self._state: dict[str, list[float]] = {}

    def predict_failed(
        self,
        model: str,
        version: str | None,
        request_id: str | None,
        error: BaseException,
    ) -> bool:
        """Log ``error`` for this request unless the model is over its budget (returns
        whether a line was written)."""
        key = f"{model}:{version or ''}"
        now = self._clock()
        state = self._state.get(key)
        if state is None or now - state[0] >= self.window:
            state = [now, 0.0, state[2] if state is not None else 0.0]
            self._state[key] = state
        if state[1] >= self.burst:
            state[2] += 1
            return False
        suppressed = int(state[2])
        state[1] += 1
        state[2] = 0
        message = getattr(error, "message", None) or repr(error)
        text = traceback_text(error)
        label = model + (f":{version}" if version else "")
        log_error(
            logger,
            "predict failed: model=%s version=%s request_id=%s: %s%s",
            (
                model,
                version or "-",
                request_id or "-",
                message,
                f" ({suppressed} similar error(s) suppressed)" if suppressed else "",
            ),
            text,
            model=label,
            model_version=version or "",
            request_id=request_id or "",
            suppressed=suppressed,
        )
        return True


def log_error(
    target: logging.Logger, message: str, args: tuple[Any, ...], text: str, **fields: Any
) -> None:
    """An ERROR record carrying ``text`` (a traceback) as its ``exc_text``: any standard
    formatter prints it under the message, as for ``logger.exception``, and it survives
    the trip from a worker process as text. ``fields`` become record attributes."""
    if not target.isEnabledFor(logging.ERROR):
        return
    record = target.makeRecord(
        target.name, logging.ERROR, __file__, 0, message, args, None, extra=fields
    )
    record.exc_text = text or None
    target.handle(record)
