"""OpenAPI 3 documents of the Open Inference Protocol: the whole data plane, or one model.

Pure functions from metadata to a JSON-ready ``dict``; ``server.docs`` serves them.
A model's document names its declared inputs and outputs in the schemas and carries
an example request that the model accepts.
"""

from __future__ import annotations

import re
from typing import Any

from ..model_routes import ModelRoute
from ..types import Datatype, MetadataModelResponse, MetadataTensor

OPENAPI_VERSION = "3.0.3"
DATATYPES = [datatype.value for datatype in Datatype]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"application/json": content}


_PARAMETERS = {
    "type": "object",
    "additionalProperties": True,
    "description": "Free-form parameters.",
}

_EVENT_STREAM = {
    "text/event-stream": {
        "schema": {
            "type": "string",
            "description": (
                "Server-sent events: one `data: <JSON>` line (and a blank line) per response "
                "the model yields, as it yields it. An error after the first response is one "
                'last event `data: {"error": "..."}`; then the stream ends.'
            ),
        }
    }
}

SCHEMAS: dict[str, Any] = {
    "Parameters": _PARAMETERS,
    "GenerateRequest": {
        "type": "object",
        "description": (
            "Generate extension request. Every field but `id` and `parameters` is one input "
            "tensor of that name: a string is a BYTES tensor of shape [1], a number INT64 "
            "or FP64 (the model's declared numeric datatype wins), a boolean BOOL, a flat "
            "list of one kind a tensor of shape [n]."
        ),
        "properties": {
            "id": {"type": "string"},
            "text_input": {"type": "string"},
            "parameters": _ref("Parameters"),
        },
        "additionalProperties": True,
    },
    "GenerateResponse": {
        "type": "object",
        "description": (
            "Generate extension response: one field per output tensor (its only element, "
            "or the list of its elements; BYTES as text), e.g. `text_output`."
        ),
        "required": ["model_name"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "text_output": {"type": "string"},
        },
        "additionalProperties": True,
    },
    "Datatype": {"type": "string", "enum": DATATYPES},
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "MetadataTensor": {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": _ref("Datatype"),
            "shape": {"type": "array", "items": {"type": "integer"}, "description": "-1: any size"},
            "parameters": _ref("Parameters"),
        },
    },
    "RequestInput": {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": _ref("Datatype"),
            "parameters": _ref("Parameters"),
            "data": {"description": "Tensor data: a flat or nested list in row-major order."},
        },
    },
    "RequestOutput": {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "parameters": _ref("Parameters")},
    },
    "ResponseOutput": {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": _ref("Datatype"),
            "parameters": _ref("Parameters"),
            "data": {"description": "Tensor data, flat, in row-major order."},
        },
    },
    "InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": _ref("Parameters"),
            "inputs": {"type": "array", "minItems": 1, "items": _ref("RequestInput")},
            "outputs": {"type": "array", "items": _ref("RequestOutput")},
        },
    },
    "InferenceResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": _ref("Parameters"),
            "outputs": {"type": "array", "items": _ref("ResponseOutput")},
        },
    },
    "MetadataServerResponse": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "MetadataModelResponse": {
        "type": "object",
        "required": ["name", "platform"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _ref("MetadataTensor")},
            "outputs": {"type": "array", "items": _ref("MetadataTensor")},
            "parameters": _ref("Parameters"),
        },
    },
    "LiveResponse": {"type": "object", "properties": {"live": {"type": "boolean"}}},
    "ReadyResponse": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    "ModelReadyResponse": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
    },
    "ModelNotReadyResponse": {
        "type": "object",
        "required": ["name", "ready", "error"],
        "properties": {
            "name": {"type": "string"},
            "ready": {"type": "boolean", "enum": [False]},
            "error": {"type": "string"},
        },
    },
    "RepositoryIndexRequest": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    "RepositoryIndexResponse": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name", "state"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string", "description": '"" for an unversioned model'},
                "state": {
                    "type": "string",
                    "enum": ["UNKNOWN", "READY", "UNAVAILABLE", "LOADING", "UNLOADING"],
                },
                "reason": {"type": "string"},
            },
        },
    },
    "Duration": {
        "type": "object",
        "properties": {"count": {"type": "integer"}, "ns": {"type": "integer"}},
    },
    "ModelStatistics": {
        "type": "object",
        "properties": {
            "model_stats": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "version": {"type": "string"},
                        "last_inference": {"type": "integer", "description": "ms since the epoch"},
                        "inference_count": {"type": "integer"},
                        "execution_count": {"type": "integer"},
                        "inference_stats": {
                            "type": "object",
                            "additionalProperties": _ref("Duration"),
                            "description": "success, fail, queue, compute_input/infer/output",
                        },
                        "batch_stats": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
            "frontends": {
                "type": "object",
                "description": "With several front-ends: who answered and which front-ends "
                "the figures cover (complete: none left out)",
                "properties": {
                    "frontend": {"type": "integer"},
                    "answered": {"type": "array", "items": {"type": "integer"}},
                    "missing": {"type": "array", "items": {"type": "integer"}},
                    "complete": {"type": "boolean"},
                },
            },
        },
    },
}

_ERROR_DESCRIPTIONS = {
    "400": "Invalid request (malformed JSON, tensors that do not match the model, ...)",
    "404": "Unknown model or version",
    "413": "Request body or message larger than the configured limit",
    "415": "Content-Type not accepted: send application/json (or none)",
    "500": "The model failed (its own code raised, or it could not be loaded)",
    "503": "Model not ready, or overloaded (with Retry-After)",
    "504": "The request's deadline passed before compute",
}


_INFER_NOTES = (
    "Body: `application/json` (or no `Content-Type`); with the binary tensor data extension "
    "(`Inference-Header-Content-Length` header) `application/octet-stream` too. Other types: 415. "
    'A given `id` (even `""`) is echoed; one is generated only when `id` is absent. '
    "BYTES output elements are JSON strings: the UTF-8 text, or base64 with the output's "
    '`parameters.content_type` set to `"base64"` when any element is not valid UTF-8.'
)


def _errors(*codes: str) -> dict[str, Any]:
    """``{"error": message}`` responses for ``codes``, as the server sends them."""
    return {
        code: {"description": _ERROR_DESCRIPTIONS[code], "content": _json(_ref("Error"))}
        for code in codes
    }


_ERRORS = _errors("400", "404", "413", "415", "500", "503", "504")  # infer


def _operation(
    summary: str, tag: str, response: str, status_doc: str = "OK", **extra: Any
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "operationId": re.sub(r"[^a-z0-9]+", "_", summary.lower()).strip("_"),
        "responses": {"200": {"description": status_doc, "content": _json(_ref(response))}},
    }
    operation.update(extra)
    return operation


def _path_params(*names: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in names
    ]


def _model_paths(
    base: str,
    tag: str,
    suffix: str,
    params: list[dict[str, Any]],
    request_schema: Any,
    response_schema: Any,
    example: Any = None,
) -> dict[str, Any]:
    """Metadata, ready, infer and stats operations under one model (or model version) path."""
    common: dict[str, Any] = {"parameters": params} if params else {}
    infer = _operation(
        f"Infer{suffix}",
        tag,
        "InferenceResponse",
        "Inference response",
        description=_INFER_NOTES,
        requestBody={"required": True, "content": _json(request_schema, example)},
        **common,
    )
    infer["responses"]["200"]["content"] = _json(response_schema)
    infer["responses"].update(_ERRORS)
    metadata = _operation(f"Model metadata{suffix}", tag, "MetadataModelResponse", **common)
    metadata["responses"].update(_errors("404", "503"))
    ready = _operation(f"Model ready{suffix}", tag, "ModelReadyResponse", "Model ready", **common)
    ready["responses"]["400"] = {
        "description": "Known model that is not ready (the protocol's 4xx = false)",
        "content": _json(_ref("ModelNotReadyResponse")),
    }
    ready["responses"].update(_errors("404"))
    stats = _operation(f"Model statistics{suffix}", tag, "ModelStatistics", **common)
    stats["responses"].update(_errors("404"))
    infer_stream = _streaming(
        f"Infer stream{suffix}", tag, _STREAM_NOTES, _json(request_schema, example), common
    )
    generate = _operation(
        f"Generate{suffix}",
        tag,
        "GenerateResponse",
        "The model's response (its predict), as generate JSON",
        description=_GENERATE_NOTES,
        requestBody={"required": True, "content": _json(_ref("GenerateRequest"))},
        **common,
    )
    generate["responses"].update(_ERRORS)
    generate_stream = _streaming(
        f"Generate stream{suffix}",
        tag,
        _GENERATE_NOTES + " Each event carries one generate response object.",
        _json(_ref("GenerateRequest")),
        common,
    )
    return {
        base: {"get": metadata},
        base + "/ready": {"get": ready},
        base + "/infer": {"post": infer},
        base + "/infer_stream": {"post": infer_stream},
        base + "/generate": {"post": generate},
        base + "/generate_stream": {"post": generate_stream},
        base + "/stats": {"get": stats},
    }


_STREAM_NOTES = (
    "Streams the model's `predict_stream` responses as server-sent events, each an "
    "inference response (with the model's name and version and the request's id). Errors "
    "before the first response (unknown model, invalid request, a model that does not "
    "stream: 400) are plain JSON errors. The model's `inference_timeout` bounds the wait "
    "for the first response and between two responses; `Inference-Timeout` bounds the "
    "whole stream. A client that disconnects stops the model's generator; so does one that "
    "takes no event for `stream_stall_timeout` seconds (its connection is then dropped)."
)
_GENERATE_NOTES = (
    "Generate extension: `text_input` (and any other field) become input tensors of the "
    "same name, `parameters` the request parameters; output tensors become fields "
    "(`text_output`)."
)


def _streaming(
    summary: str, tag: str, notes: str, request: dict[str, Any], common: dict[str, Any]
) -> dict[str, Any]:
    """A POST answering ``text/event-stream`` (with the usual JSON errors before it starts)."""
    operation = _operation(summary, tag, "InferenceResponse", description=notes, **common)
    operation["requestBody"] = {"required": True, "content": request}
    operation["responses"]["200"] = {"description": "Server-sent events", "content": _EVENT_STREAM}
    operation["responses"].update(_ERRORS)
    return operation


def _server_ready() -> dict[str, Any]:
    operation = _operation("Server ready", "health", "ReadyResponse", "Every model is ready")
    operation["responses"]["503"] = {
        "description": "Not ready: a model meant to serve is not ready (or shutting down)",
        "content": _json(_ref("ReadyResponse")),
    }
    return operation


def model_route_operation(route: ModelRoute, model_name: str) -> dict[str, Any]:
    """The operation of a runtime's own route (``model_routes`` setting) serving one model."""
    content: dict[str, Any] = {}
    for media_type in sorted(route.media_types):
        entry: dict[str, Any] = {
            "schema": {"type": "object"} if "json" in media_type else {"type": "string"}
        }
        if media_type in route.request_examples:
            entry["example"] = route.request_examples[media_type]
        content[media_type] = entry
    responses: dict[str, Any] = {
        "200": {"description": "The model's answer", "content": _json({"type": "object"})}
    }
    responses.update(_ERRORS)
    accepted = " or ".join(sorted(route.media_types))
    responses["415"] = {
        "description": f"Content-Type not accepted: send {accepted} (none at all means JSON)",
        "content": _json(_ref("Error")),
    }
    return {
        "summary": f"{route.summary} for model '{model_name}'",
        "tags": [f"{model_name} (runtime route)"],
        "operationId": re.sub(r"[^a-z0-9]+", "_", f"{model_name} {route.path}".lower()).strip("_"),
        "description": route.description,
        "requestBody": {"required": True, "content": content},
        "responses": responses,
    }


def dataplane_document(
    server_name: str,
    server_version: str,
    root_path: str = "",
    extra_paths: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole Open Inference Protocol as this server serves it (with ``extra_paths``,
    the routes runtimes added for their models)."""
    model, version = "/v2/models/{model_name}", "/v2/models/{model_name}/versions/{model_version}"
    paths: dict[str, Any] = {
        "/v2": {"get": _operation("Server metadata", "server", "MetadataServerResponse")},
        "/v2/health/live": {"get": _operation("Server live", "health", "LiveResponse")},
        "/v2/health/ready": {"get": _server_ready()},
    }
    paths.update(
        _model_paths(
            model,
            "model",
            "",
            _path_params("model_name"),
            _ref("InferenceRequest"),
            _ref("InferenceResponse"),
        )
    )
    paths.update(
        _model_paths(
            version,
            "model version",
            " (version)",
            _path_params("model_name", "model_version"),
            _ref("InferenceRequest"),
            _ref("InferenceResponse"),
        )
    )
    index = _operation(
        "Repository index",
        "repository",
        "RepositoryIndexResponse",
        requestBody={"required": False, "content": _json(_ref("RepositoryIndexRequest"))},
    )
    index["responses"].update(_errors("400", "415"))
    paths["/v2/repository/index"] = {"post": index}
    for action in ("load", "unload"):
        responses = {"200": {"description": "OK", "content": _json({"type": "object"})}}
        responses.update(_errors("400", "404", "415", "500"))
        paths[f"/v2/repository/models/{{model_name}}/{action}"] = {
            "post": {
                "summary": f"Repository {action}",
                "tags": ["repository"],
                "operationId": f"repository_{action}",
                "parameters": _path_params("model_name"),
                "responses": responses,
            }
        }
    paths.update(extra_paths or {})
    return _document(f"{server_name} data plane", server_version, root_path, paths, {})


def model_document(
    metadata: MetadataModelResponse,
    version: str | None,
    server_version: str,
    root_path: str = "",
    extra_paths: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One model (version): its operations, with its inputs and outputs in the schemas
    (and ``extra_paths``, the routes its runtime serves for it)."""
    name = metadata.name
    base = f"/v2/models/{name}" + (f"/versions/{version}" if version else "")
    inputs, outputs = metadata.inputs or [], metadata.outputs or []
    key = re.sub(r"[^A-Za-z0-9._-]", "_", name)  # component names allow only these
    schemas = {
        f"{key}_InferenceRequest": _request_schema(inputs),
        f"{key}_InferenceResponse": _response_schema(outputs),
    }
    paths = _model_paths(
        base,
        name,
        "",
        [],
        _ref(f"{key}_InferenceRequest"),
        _ref(f"{key}_InferenceResponse"),
        example_request(inputs),
    )
    paths.update(extra_paths or {})
    title = f"{name}" + (f" version {version}" if version else "")
    description = _describe_tensors(inputs, outputs)
    return _document(title, server_version, root_path, paths, schemas, description)


def _document(
    title: str,
    version: str,
    root_path: str,
    paths: dict[str, Any],
    extra_schemas: dict[str, Any],
    description: str = "Open Inference Protocol (KServe V2) REST API.",
) -> dict[str, Any]:
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version or "0", "description": description},
        "servers": [{"url": root_path or "/"}],
        "paths": paths,
        "components": {"schemas": {**SCHEMAS, **extra_schemas}},
    }


def _tensor_input_schema(tensor: MetadataTensor) -> dict[str, Any]:
    return {
        "type": "object",
        "title": tensor.name,
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string", "enum": [tensor.name]},
            "shape": {
                "type": "array",
                "items": {"type": "integer"},
                "example": _example_shape(tensor.shape),
            },
            "datatype": {"type": "string", "enum": [tensor.datatype.value]},
            "parameters": _ref("Parameters"),
            "data": {"type": "array", "items": _element_schema(tensor.datatype)},
        },
        "description": f"{tensor.datatype.value} tensor of shape {tensor.shape}",
    }


def _request_schema(inputs: list[MetadataTensor]) -> dict[str, Any]:
    items: dict[str, Any] = (
        {"oneOf": [_tensor_input_schema(t) for t in inputs]} if inputs else _ref("RequestInput")
    )
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": _ref("Parameters"),
            "inputs": {"type": "array", "minItems": 1, "items": items},
            "outputs": {"type": "array", "items": _ref("RequestOutput")},
        },
    }


def _response_schema(outputs: list[MetadataTensor]) -> dict[str, Any]:
    item: dict[str, Any] = _ref("ResponseOutput")
    if outputs:
        item = {
            "type": "object",
            "required": ["name", "shape", "datatype", "data"],
            "properties": {
                "name": {"type": "string", "enum": [t.name for t in outputs]},
                "shape": {"type": "array", "items": {"type": "integer"}},
                "datatype": _ref("Datatype"),
                "parameters": _ref("Parameters"),
                "data": {"type": "array", "items": {}},
            },
        }
    return {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": _ref("Parameters"),
            "outputs": {"type": "array", "items": item},
        },
    }


def _element_schema(datatype: Datatype) -> dict[str, Any]:
    if datatype is Datatype.BOOL:
        return {"type": "boolean"}
    if datatype is Datatype.BYTES:
        return {"type": "string"}
    if datatype.value.startswith("FP"):
        return {"type": "number"}
    return {"type": "integer"}


def _example_shape(shape: list[int]) -> list[int]:
    return [dim if dim > 0 else 1 for dim in shape] or [1]


def _example_value(datatype: Datatype) -> Any:
    if datatype is Datatype.BOOL:
        return False
    if datatype is Datatype.BYTES:
        return "text"
    if datatype.value.startswith("FP"):
        return 0.5
    return 1


def example_request(inputs: list[MetadataTensor]) -> dict[str, Any] | None:
    """A request the model accepts: each declared input, free dimensions set to 1."""
    if not inputs:
        return None
    request_inputs = []
    for tensor in inputs:
        shape = _example_shape(tensor.shape)
        count = 1
        for dim in shape:
            count *= dim
        request_inputs.append(
            {
                "name": tensor.name,
                "shape": shape,
                "datatype": tensor.datatype.value,
                "data": [_example_value(tensor.datatype)] * count,
            }
        )
    return {"inputs": request_inputs}


def _describe_tensors(inputs: list[MetadataTensor], outputs: list[MetadataTensor]) -> str:
    def rows(tensors: list[MetadataTensor]) -> str:
        if not tensors:
            return "_not declared_\n"
        return "".join(f"| `{t.name}` | {t.datatype.value} | {t.shape} |\n" for t in tensors)

    header = "| name | datatype | shape |\n|---|---|---|\n"
    return f"**Inputs**\n\n{header}{rows(inputs)}\n**Outputs**\n\n{header}{rows(outputs)}"
