"""REST routes a runtime declares beside the protocol's (e.g. MLflow's ``/invocations``).

A runtime lists ``ModelRoute`` objects in its class attribute ``MLModel.rest_routes``; the
server serves them only for the models named in the ``model_routes`` setting. A route here
is pure translation, with no web library: ``to_request`` turns a body in the route's own
format into an ``InferenceRequest`` for the model, ``to_answer`` turns the model's
``InferenceResponse`` into the JSON the route answers with. Everything else (reading the
body within the size limit, the ``Content-Type`` check, auth, dispatch to the model,
deadlines, errors as ``{"error": ...}``, the OpenAPI entry) is the REST transport's.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .types import InferenceRequest, InferenceResponse, MetadataModelResponse


class ModelRoute:
    """One extra REST route: its path, what it accepts, and how it translates.

    Subclasses set the class attributes and implement ``to_request`` and ``to_answer``;
    both raise ``InvalidRequest`` (400) for input they cannot translate.
    """

    path: ClassVar[str] = ""
    """The route's path, outside ``/v2`` (e.g. ``/invocations``)."""
    media_types: ClassVar[frozenset[str]] = frozenset({"application/json"})
    """Accepted request ``Content-Type`` values (415 otherwise; none at all means JSON)."""
    summary: ClassVar[str] = ""
    """One line for the OpenAPI document."""
    description: ClassVar[str] = ""
    """What the route accepts and answers, for the OpenAPI document (Markdown)."""
    request_examples: ClassVar[dict[str, dict[str, Any]]] = {}
    """OpenAPI request examples by media type (``{"application/json": {...}}``)."""

    def to_request(
        self, body: bytes, media_type: str, metadata: MetadataModelResponse
    ) -> InferenceRequest:
        """The request body (``media_type`` is one of ``media_types``) as an inference request."""
        raise NotImplementedError

    def to_answer(self, response: InferenceResponse, metadata: MetadataModelResponse) -> Any:
        """The model's response as the JSON-serialisable answer of this route."""
        raise NotImplementedError
