"""OpenAPI documents: valid OpenAPI 3, model tensors in the schemas, a valid example."""

from __future__ import annotations

from typing import Any

import pytest

from mlpack.server.openapi import dataplane_document, example_request, model_document
from mlpack.types import InferenceRequest, MetadataModelResponse, MetadataTensor


def validate(document: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(document)


def metadata() -> MetadataModelResponse:
    return MetadataModelResponse(
        name="my model",
        inputs=[
            MetadataTensor(name="x", datatype="FP32", shape=[-1, 3]),
            MetadataTensor(name="flag", datatype="BOOL", shape=[2]),
            MetadataTensor(name="text", datatype="BYTES", shape=[-1]),
        ],
        outputs=[MetadataTensor(name="y", datatype="INT64", shape=[-1])],
    )


def test_dataplane_document_is_valid_openapi() -> None:
    document = dataplane_document("mlpack", "1.2", root_path="/proxy")
    validate(document)
    assert document["servers"] == [{"url": "/proxy"}]
    for path in (
        "/v2",
        "/v2/health/ready",
        "/v2/models/{model_name}/infer",
        "/v2/repository/index",
    ):
        assert path in document["paths"]
    operation_ids = [
        op["operationId"] for item in document["paths"].values() for op in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))


@pytest.mark.parametrize("version", [None, "3"])
def test_model_document_names_tensors(version: str | None) -> None:
    document = model_document(metadata(), version, "1.2")
    validate(document)
    base = "/v2/models/my model" + (f"/versions/{version}" if version else "")
    suffixes = ["", "/ready", "/infer", "/infer_stream", "/generate", "/generate_stream", "/stats"]
    assert set(document["paths"]) == {base + suffix for suffix in suffixes}
    streaming = document["paths"][base + "/infer_stream"]["post"]
    assert set(streaming["responses"]["200"]["content"]) == {"text/event-stream"}
    schemas = document["components"]["schemas"]
    names = [
        s["properties"]["name"]["enum"]
        for s in schemas["my_model_InferenceRequest"]["properties"]["inputs"]["items"]["oneOf"]
    ]
    assert names == [["x"], ["flag"], ["text"]]
    response_item = schemas["my_model_InferenceResponse"]["properties"]["outputs"]["items"]
    assert response_item["properties"]["name"]["enum"] == ["y"]


def test_example_request_is_a_valid_request() -> None:
    example = example_request(metadata().inputs or [])
    assert example is not None
    request = InferenceRequest.model_validate(example)
    assert [(i.name, i.shape, len(i.data)) for i in request.inputs] == [
        ("x", [1, 3], 3),
        ("flag", [2], 2),
        ("text", [1], 1),
    ]
    assert example_request([]) is None
