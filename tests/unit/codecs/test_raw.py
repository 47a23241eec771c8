"""The raw tensor wire format: one codec for gRPC raw contents, REST binary and the clients."""

from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest

from mlpack.client.binary import decode_binary_response, encode_binary_request
from mlpack.codecs.raw import array_to_raw, join_bytes, raw_to_array, split_bytes
from mlpack.codecs.tensors import DATATYPE_TO_DTYPE
from mlpack.errors import InvalidRequest
from mlpack.types import Datatype


@pytest.mark.parametrize("datatype", [d for d in Datatype if d is not Datatype.BYTES])
def test_numbers_round_trip_little_endian(datatype: Datatype) -> None:
    values = (np.arange(6) % (2 if datatype is Datatype.BOOL else 6)).astype(
        DATATYPE_TO_DTYPE[datatype]
    )
    raw = array_to_raw(values, datatype)
    assert raw == values.astype(values.dtype.newbyteorder("<")).tobytes()
    for source in (raw, memoryview(raw)):
        decoded = raw_to_array(source, datatype, [2, 3])
        assert decoded.dtype == DATATYPE_TO_DTYPE[datatype] and decoded.tolist() == values.tolist()


def test_bytes_are_length_prefixed() -> None:
    raw = join_bytes([b"a", b"", "é".encode()])
    assert (
        raw
        == struct.pack("<I", 1) + b"a" + struct.pack("<I", 0) + struct.pack("<I", 2) + "é".encode()
    )
    assert raw_to_array(memoryview(raw), Datatype.BYTES, [3]) == [b"a", b"", "é".encode()]
    assert array_to_raw([b"a", b"", "é".encode()], Datatype.BYTES) == raw


@pytest.mark.parametrize(
    ("raw", "shape", "message"),
    [
        (
            struct.pack("<I", 1) + b"a" + b"\x01\x00",
            [2],
            "ends inside the length prefix of element 1",
        ),
        (
            struct.pack("<I", 5) + b"ab",
            [1],
            "element 0 declares 5 bytes at offset 0 but only 2 remain",
        ),
        (struct.pack("<I", 1) + b"a", [2], "holds 1 elements but the shape implies 2"),
    ],
)
def test_bad_bytes_name_the_tensor_and_the_problem(
    raw: bytes, shape: list[int], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        raw_to_array(raw, Datatype.BYTES, shape, name="s", where="raw_input_contents[0]")
    assert caught.value.message.startswith("input 's' (BYTES): raw_input_contents[0]")
    if "shape implies" in message:
        assert split_bytes(raw) == [b"a"]  # well formed; only the count is wrong
    else:
        with pytest.raises(InvalidRequest, match=message):
            split_bytes(raw, name="s", role="output", where="binary data")


def test_wrong_byte_count_and_bad_booleans() -> None:
    with pytest.raises(InvalidRequest, match=r"has 7 bytes but shape \[2\] needs 8"):
        raw_to_array(b"\0" * 7, Datatype.FP32, [2], name="x")
    with pytest.raises(InvalidRequest, match="a byte other than 0 or 1"):
        raw_to_array(b"\x00\x02", Datatype.BOOL, [2], name="x")


def test_client_round_trips_through_the_same_codec() -> None:
    body, length = encode_binary_request(
        {
            "inputs": [
                {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1.5, 2], [3, 4]]},
                {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["hé", b"\xff"]},
            ]
        }
    )
    x, s = body[length : length + 16], body[length + 16 :]
    assert raw_to_array(x, Datatype.FP32, [2, 2]).tolist() == [1.5, 2, 3, 4]
    assert raw_to_array(s, Datatype.BYTES, [2]) == ["hé".encode(), b"\xff"]
    header = (
        b'{"outputs":[{"name":"x","shape":[2,2],"datatype":"FP32","parameters":'
        b'{"binary_data_size":16}},{"name":"s","shape":[2],"datatype":"BYTES",'
        b'"parameters":{"binary_data_size":%d}}]}' % len(s)
    )
    response = decode_binary_response(header + x + s, len(header))
    assert [o["data"] for o in response["outputs"]] == [[1.5, 2, 3, 4], ["hé", "ÿ"]]
    bad = header.replace(b'"shape":[2,2]', b'"shape":[3,2]')
    with pytest.raises(InvalidRequest, match=r"output 'x' \(FP32\): binary data has 16 bytes"):
        decode_binary_response(bad + x + s, len(bad))


def test_rest_binary_does_not_import_grpc_code() -> None:
    code = (
        "import sys, mlpack.server.binary, mlpack.client.binary; "
        "print(sorted(m for m in sys.modules if m.startswith(('mlpack.proto', 'grpc'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
