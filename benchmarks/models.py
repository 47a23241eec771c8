"""Model folders and request bodies for the benchmark scenarios."""

from __future__ import annotations

import json
from pathlib import Path

IRIS_NAME = "iris"
IRIS_INPUT = "predict"
IRIS_SHAPE = [1, 4]
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
IRIS_REQUEST = {
    "inputs": [{"name": IRIS_INPUT, "shape": IRIS_SHAPE, "datatype": "FP64", "data": IRIS_ROW}]
}
IMPLEMENTATIONS = {
    "mlpack": "mlpack_sklearn.SKLearnModel",
    "mlserver": "mlserver_sklearn.SKLearnModel",
}


def iris_request_body() -> bytes:
    """The V2 REST request body for one iris row."""
    return json.dumps(IRIS_REQUEST, separators=(",", ":")).encode()


def train_iris(path: Path) -> Path:
    """Train the iris LogisticRegression and dump it with joblib to `path`."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    return path


def write_iris_folder(folder: Path, server: str, joblib_path: Path | None = None) -> Path:
    """Write an iris model folder (model.joblib + model-settings.json) for `server`.

    `server` is "mlpack" or "mlserver"; `joblib_path`, when given, is copied instead of retraining.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "model.joblib"
    if joblib_path is not None:
        target.write_bytes(joblib_path.read_bytes())
    else:
        train_iris(target)
    settings = {
        "name": IRIS_NAME,
        "implementation": IMPLEMENTATIONS[server],
        "parameters": {"uri": "./model.joblib"},
    }
    (folder / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    return folder


def write_iris_folders(root: Path) -> dict[str, Path]:
    """Train once and write `root/<server>/iris` per server; return server → repository root."""
    joblib_path = train_iris(root / "iris.joblib")
    return {
        server: write_iris_folder(root / server / IRIS_NAME, server, joblib_path).parent
        for server in IMPLEMENTATIONS
    }


# --------------------------------------------------------------------------- gRPC bodies
# A hand-written protobuf encoder for inference.ModelInferRequest keeps the gRPC driver free of
# generated stubs (and of the protobuf clash between different servers' generated modules).


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def model_infer_request(model: str, name: str, shape: list[int], fp64: list[float]) -> bytes:
    """Serialized `inference.ModelInferRequest` with one FP64 input in `contents.fp64_contents`."""
    import struct

    contents = _field(7, struct.pack(f"<{len(fp64)}d", *fp64))  # InferTensorContents.fp64_contents
    tensor = (
        _field(1, name.encode())  # InferInputTensor.name
        + _field(2, b"FP64")  # .datatype
        + _field(3, b"".join(_varint(d) for d in shape))  # .shape (packed int64)
        + _field(5, contents)  # .contents
    )
    return _field(1, model.encode()) + _field(5, tensor)  # ModelInferRequest.model_name, .inputs


def iris_grpc_body() -> bytes:
    """The serialized gRPC ModelInferRequest for one iris row."""
    return model_infer_request(IRIS_NAME, IRIS_INPUT, IRIS_SHAPE, IRIS_ROW)
