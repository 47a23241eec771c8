"""OnnxModel against onnxruntime and scikit-learn, on tiny graphs made here."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper

from mlpack.errors import InvalidRequest, ModelLoadError
from mlpack.settings import ModelSettings
from mlpack.types import InferenceRequest
from mlpack_onnx import OnnxModel


def _add_graph(path: Path) -> None:
    """y = a + b, z = a * 2 (FP32, shape [batch, 3])."""
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 3])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"]), helper.make_node("Mul", ["a", "two"], ["z"])],
        "add",
        [a, b],
        [y, z],
        initializer=[two],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _load(folder: Path, **settings: object) -> OnnxModel:
    model = OnnxModel(ModelSettings(name="onnx", folder=str(folder), **settings))
    assert asyncio.run(model.load())
    return model


def _tensor(name: str, rows: np.ndarray, datatype: str = "FP32") -> dict[str, object]:
    return {
        "name": name,
        "shape": list(rows.shape),
        "datatype": datatype,
        "data": rows.reshape(-1).tolist(),
    }


def test_metadata_comes_from_the_graph(tmp_path: Path) -> None:
    _add_graph(tmp_path / "model.onnx")
    model = _load(
        tmp_path, parameters={"extra": {"intra_op_num_threads": 1, "inter_op_num_threads": 1}}
    )
    assert [(t.name, t.datatype.value, t.shape) for t in model.inputs] == [
        ("a", "FP32", [-1, 3]),
        ("b", "FP32", [-1, 3]),
    ]
    assert [t.name for t in model.outputs] == ["y", "z"]
    assert model._session.get_session_options().intra_op_num_threads == 1


def test_outputs_match_onnxruntime(tmp_path: Path) -> None:
    _add_graph(tmp_path / "model.onnx")
    model = _load(tmp_path)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.ones((2, 3), dtype=np.float32)
    request = InferenceRequest.model_validate(
        {"inputs": [_tensor("a", a), _tensor("b", b)], "outputs": [{"name": "z"}]}
    )
    response = model.predict(request)
    expected = ort.InferenceSession(str(tmp_path / "model.onnx")).run(["z"], {"a": a, "b": b})[0]
    assert [o.name for o in response.outputs] == ["z"]
    assert response.outputs[0].shape == [2, 3] and response.outputs[0].datatype.value == "FP32"
    np.testing.assert_allclose(response.outputs[0].data, expected.reshape(-1))
    with pytest.raises(InvalidRequest, match="missing input"):
        model.predict(InferenceRequest.model_validate({"inputs": [_tensor("a", a)]}))


def test_sklearn_classifier_converted_with_skl2onnx(tmp_path: Path) -> None:
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    classifier = LogisticRegression(max_iter=500).fit(features, labels)
    graph = skl2onnx.convert_sklearn(
        classifier,
        initial_types=[("input", FloatTensorType([None, 4]))],
        options={id(classifier): {"zipmap": False}},
        target_opset=17,
    )
    (tmp_path / "model.onnx").write_bytes(graph.SerializeToString())
    model = _load(tmp_path)
    rows = features[::30].astype(np.float32)
    response = model.predict(InferenceRequest.model_validate({"inputs": [_tensor("input", rows)]}))
    by_name = {o.name: o for o in response.outputs}
    assert by_name["label"].data == classifier.predict(rows).tolist()
    np.testing.assert_allclose(
        np.array(by_name["probabilities"].data).reshape(len(rows), 3),
        classifier.predict_proba(rows),
        atol=1e-5,
    )


def test_missing_artefact_and_unknown_declared_output(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"model.onnx not found"):
        _load(tmp_path)
    _add_graph(tmp_path / "model.onnx")
    with pytest.raises(ModelLoadError, match=r"declared outputs \['nope'\]"):
        _load(tmp_path, outputs=[{"name": "nope", "datatype": "FP32", "shape": [-1]}])


def test_string_tensors_round_trip(tmp_path: Path) -> None:
    s = helper.make_tensor_value_info("s", TensorProto.STRING, [None])
    t = helper.make_tensor_value_info("t", TensorProto.STRING, [None])
    graph = helper.make_graph([helper.make_node("Identity", ["s"], ["t"])], "identity", [s], [t])
    model_proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model_proto.ir_version = 8
    onnx.save(model_proto, str(tmp_path / "model.onnx"))
    model = _load(tmp_path)
    assert [(i.name, i.datatype.value, i.shape) for i in model.inputs] == [("s", "BYTES", [-1])]
    request = InferenceRequest.model_validate(
        {"inputs": [{"name": "s", "shape": [2], "datatype": "BYTES", "data": ["héllo", "b"]}]}
    )
    [output] = model.predict(request).outputs
    assert output.datatype.value == "BYTES" and output.data == ["héllo", "b"]
