"""What a client learns when a model's own code raises (``model_error_detail``).

The engine logs the model's exception with its traceback where it is caught; the client
never gets a traceback. With ``model_error_detail: "message"`` (the default) it gets the
model's message (useful: the model's own words); with ``"generic"`` it gets a fixed
sentence and an error id, and the message goes to the log under that id.
"""

from __future__ import annotations

import logging
import uuid

from ..errors import MLPackError, ModelError

logger = logging.getLogger("mlpack.server")


def public_message(error: MLPackError, generic: bool) -> str:
    """The message a client may see for ``error``."""
    if not generic or not isinstance(error, ModelError):
        return error.message
    error_id = uuid.uuid4().hex[:16]
    logger.error("model error %s: %s", error_id, error.message)
    return f"the model failed (error id {error_id}; the details are in the server log)"
