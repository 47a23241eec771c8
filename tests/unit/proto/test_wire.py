"""mlpack's generated messages against tritonclient's, and the generator itself."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlpack.codecs.tensors import DATATYPE_TO_DTYPE
from mlpack.proto import convert
from mlpack.proto import inference_pb2 as pb
from mlpack.types import Datatype, InferenceResponse, ResponseOutput

triton_pb = pytest.importorskip("tritonclient.grpc.service_pb2")
tritonclient_grpc = pytest.importorskip("tritonclient.grpc")
triton_utils = pytest.importorskip("tritonclient.grpc._utils")

ROOT = Path(__file__).resolve().parents[3]
RPCS = [
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelInfer",
    "ModelStreamInfer",
    "RepositoryIndex",
    "RepositoryModelLoad",
    "RepositoryModelUnload",
]
# Fields mlpack adds on top of Triton's service (MLServer uses the same numbers).
EXTENSIONS = {
    ("inference.ModelMetadataResponse", 6),
    ("inference.ModelMetadataResponse.TensorMetadata", 4),
}
EXTENSION_ENTRIES = {
    "inference.ModelMetadataResponse.ParametersEntry",
    "inference.ModelMetadataResponse.TensorMetadata.ParametersEntry",
}


def _fields(descriptor: Any) -> dict[tuple[str, int], tuple[str, int, bool, str]]:
    found = {}
    for field in descriptor.fields:
        kind = field.message_type.full_name if field.message_type else ""
        found[(descriptor.full_name, field.number)] = (
            field.name,
            field.type,
            field.is_repeated,
            kind,
        )
    for nested in descriptor.nested_types:
        found.update(_fields(nested))
    return found


def test_service_and_messages_match_tritonclient_on_the_wire() -> None:
    ours = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = triton_pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert ours.full_name == theirs.full_name == "inference.GRPCInferenceService"
    assert [m.name for m in ours.methods] == RPCS
    for method in ours.methods:
        other = theirs.methods_by_name[method.name]
        for mine, theirs_type in (
            (method.input_type, other.input_type),
            (method.output_type, other.output_type),
        ):
            assert mine.full_name == theirs_type.full_name
    for name, descriptor in pb.DESCRIPTOR.message_types_by_name.items():
        mine = _fields(descriptor)
        expected = _fields(triton_pb.DESCRIPTOR.message_types_by_name[name])
        assert {
            k: v for k, v in mine.items() if k not in EXTENSIONS and k[0] not in EXTENSION_ENTRIES
        } == expected, name
    oneof = pb.InferParameter.DESCRIPTOR.oneofs_by_name["parameter_choice"]
    assert [f.name for f in oneof.fields] == [
        f.name
        for f in triton_pb.InferParameter.DESCRIPTOR.oneofs_by_name["parameter_choice"].fields
    ]


def test_both_sets_of_messages_live_in_one_process() -> None:
    # Ours are in a private pool, so tritonclient's default-pool registration does not clash.
    assert pb.ModelInferRequest.DESCRIPTOR.file.pool is pb.POOL
    assert pb.ModelInferRequest is not triton_pb.ModelInferRequest


def test_a_tritonclient_request_decodes() -> None:
    x = tritonclient_grpc.InferInput("x", [2, 3], "FP32")
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    x.set_data_from_numpy(values)
    s = tritonclient_grpc.InferInput("s", [2], "BYTES")
    s.set_data_from_numpy(np.array([b"a", "é".encode()], dtype=object))
    h = tritonclient_grpc.InferInput("h", [2], "FP16")
    h.set_data_from_numpy(np.array([0.5, np.nan], dtype=np.float16))
    y = tritonclient_grpc.InferRequestedOutput("y")
    message = triton_utils._get_inference_request(
        model_name="m",
        inputs=[x, s, h],
        model_version="1",
        request_id="r",
        outputs=[y],
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        parameters={"content_type": "np", "limit": 3},
    )
    request = convert.model_infer_request_to_types(
        pb.ModelInferRequest.FromString(message.SerializeToString())
    )
    assert request.id == "r" and request.parameters is not None
    assert request.parameters.content_type == "np" and request.parameters.limit == 3  # type: ignore[attr-defined]
    assert [o.name for o in request.outputs or []] == ["y"]
    decoded = {i.name: i._decoded for i in request.inputs}
    assert decoded["x"].tobytes() == values.tobytes()
    assert decoded["s"] == [b"a", "é".encode()]
    assert decoded["h"].tobytes() == np.array([0.5, np.nan], dtype=np.float16).tobytes()


@pytest.mark.parametrize("datatype", [d for d in Datatype if d is not Datatype.BYTES])
def test_a_raw_response_reads_back_in_tritonclient(datatype: Datatype) -> None:
    dtype = np.dtype(DATATYPE_TO_DTYPE[datatype])
    values = np.arange(6).astype(dtype).reshape(3, 2)
    response = InferenceResponse(
        model_name="m",
        outputs=[
            ResponseOutput(name="y", shape=[3, 2], datatype=datatype, data=values),
            ResponseOutput(name="s", shape=[1], datatype=Datatype.BYTES, data=["hé"]),
        ],
    )
    message = convert.types_to_model_infer_response(response, raw=True)
    result = tritonclient_grpc.InferResult(
        triton_pb.ModelInferResponse.FromString(message.SerializeToString())
    )
    out = result.as_numpy("y")
    assert out.dtype == dtype and out.tobytes() == values.tobytes() and out.shape == (3, 2)
    assert list(result.as_numpy("s")) == ["hé".encode()]


def test_proto_package_imports_nothing_heavy() -> None:
    code = (
        "import sys, mlpack.proto; "
        "heavy = {'numpy', 'grpc', 'google.protobuf'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.mark.skipif(
    metadata.version("grpcio-tools") != "1.81.1",
    reason="the checked-in code comes from the pinned grpcio-tools",
)
def test_generated_code_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_proto.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        check=False,
        text=True,
    )
    assert result.returncode == 0, result.stderr
