"""MLflowModel against real MLflow models saved here: scikit-learn and custom pyfuncs."""

from __future__ import annotations

import asyncio
import json
import shutil
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

mlflow = pytest.importorskip("mlflow")
# MLflow asks model authors for type hints on predict() when it loads their pyfunc.
pytestmark = pytest.mark.filterwarnings("ignore:.*Add type hints:UserWarning")
pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")

from mlpack_mlflow import MLflowModel, MLflowRuntime

from mlpack.errors import InvalidRequest, ModelLoadError
from mlpack.settings import ModelSettings
from mlpack.types import InferenceRequest

# Listed, so MLflow does not load each model in a subprocess to guess them (slow).
REQUIREMENTS = ["scikit-learn", "pandas"]
IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

# A custom pyfunc, saved as "models from code" so the server process needs no test module.
SCORER_CODE = textwrap.dedent('''
    import mlflow
    import pandas as pd


    class Scorer(mlflow.pyfunc.PythonModel):
        """total = (a + b) * scale; label = name upper-cased."""

        def predict(self, context, model_input, params=None):
            scale = (params or {}).get("scale", 1.0)
            return pd.DataFrame({
                "total": (model_input["a"] + model_input["b"]) * scale,
                "label": model_input["name"].str.upper(),
            })


    mlflow.models.set_model(Scorer())
''')

# A tensor-signature pyfunc: one tensor in → row sums; a dict of two tensors → their product.
TENSOR_CODE = textwrap.dedent("""
    import mlflow
    import numpy as np


    class Tensors(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            if isinstance(model_input, dict):
                return {"product": model_input["x"] * model_input["y"]}
            return np.asarray(model_input).sum(axis=1)


    mlflow.models.set_model(Tensors())
""")


def _quietly() -> Any:
    # MLflow warns (type hints, input examples) while it saves a model.
    context = warnings.catch_warnings()
    context.__enter__()
    warnings.simplefilter("ignore")
    return context


def save_iris(folder: Path) -> Any:
    """A scikit-learn LogisticRegression on iris, saved by mlflow.sklearn with a signature."""
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    frame = pd.DataFrame(features, columns=IRIS_COLUMNS)
    classifier = LogisticRegression(max_iter=500).fit(frame, labels)
    context = _quietly()
    try:
        import mlflow.sklearn

        mlflow.sklearn.save_model(
            classifier,
            str(folder),
            signature=infer_signature(frame, classifier.predict(frame)),
            pip_requirements=REQUIREMENTS,
        )
    finally:
        context.__exit__(None, None, None)
    return classifier, frame


def save_scorer(folder: Path, code_dir: Path) -> None:
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    code_dir.mkdir(parents=True, exist_ok=True)
    (code_dir / "scorer.py").write_text(SCORER_CODE)
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", "a"), ColSpec("long", "b"), ColSpec("string", "name")]),
        outputs=Schema([ColSpec("double", "total"), ColSpec("string", "label")]),
        params=ParamSchema([ParamSpec("scale", "double", 1.0)]),
    )
    context = _quietly()
    try:
        mlflow.pyfunc.save_model(
            str(folder),
            python_model=str(code_dir / "scorer.py"),
            signature=signature,
            pip_requirements=REQUIREMENTS,
        )
    finally:
        context.__exit__(None, None, None)


def save_tensors(folder: Path, code_dir: Path, as_dict: bool) -> None:
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    code_dir.mkdir(parents=True, exist_ok=True)
    (code_dir / "tensors.py").write_text(TENSOR_CODE)
    if as_dict:
        spec = np.dtype(np.float32)
        signature = ModelSignature(
            inputs=Schema([TensorSpec(spec, (-1, 2), "x"), TensorSpec(spec, (-1, 2), "y")]),
            outputs=Schema([TensorSpec(spec, (-1, 2), "product")]),
        )
    else:
        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3))]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), (-1,))]),
        )
    context = _quietly()
    try:
        mlflow.pyfunc.save_model(
            str(folder),
            python_model=str(code_dir / "tensors.py"),
            signature=signature,
            pip_requirements=REQUIREMENTS,
        )
    finally:
        context.__exit__(None, None, None)


def _load(folder: Path, **settings: Any) -> MLflowModel:
    model = MLflowModel(ModelSettings(name="mlflow-model", folder=str(folder), **settings))
    assert asyncio.run(model.load())
    return model


def _columns_request(frame: Any, **parameters: Any) -> InferenceRequest:
    inputs = []
    for column in frame.columns:
        values = frame[column].tolist()
        datatype = (
            "BYTES"
            if isinstance(values[0], str)
            else ("INT64" if isinstance(values[0], int) else "FP64")
        )
        inputs.append(
            {"name": column, "shape": [len(values)], "datatype": datatype, "data": values}
        )
    body: dict[str, Any] = {"inputs": inputs}
    if parameters:
        body["parameters"] = parameters
    return InferenceRequest.model_validate(body)


@pytest.fixture(scope="module")
def iris_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    folder = tmp_path_factory.mktemp("iris") / "model"
    classifier, frame = save_iris(folder)
    return folder, classifier, frame


def test_alias_is_the_same_class() -> None:
    assert MLflowRuntime is MLflowModel


def test_sklearn_model_metadata_and_predictions(iris_folder: tuple[Path, Any, Any]) -> None:
    folder, classifier, frame = iris_folder
    model = _load(folder)
    assert [(t.name, t.datatype.value, t.shape) for t in model.inputs] == [
        (name, "FP64", [-1]) for name in IRIS_COLUMNS
    ]
    assert [(t.name, t.datatype.value) for t in model.outputs] == [("output-0", "INT64")]
    assert model.settings.parameters.content_type == "pd"
    rows = frame.iloc[::40]
    [output] = model.predict(_columns_request(rows)).outputs
    assert output.name == "output-0" and output.datatype.value == "INT64"
    assert output.data == classifier.predict(rows).tolist()


def test_sklearn_model_refuses_what_the_signature_does_not_allow(
    iris_folder: tuple[Path, Any, Any],
) -> None:
    folder, _, frame = iris_folder
    model = _load(folder)
    with pytest.raises(InvalidRequest, match=r"missing input\(s\) 'petal_width'"):
        model.predict(_columns_request(frame.iloc[:2, :3]))
    wrong = frame.iloc[:2].astype(object)
    wrong["sepal_length"] = ["a", "b"]
    with pytest.raises(InvalidRequest, match="sepal_length"):
        model.predict(_columns_request(wrong))
    with pytest.raises(InvalidRequest, match="no inputs"):
        model.predict(InferenceRequest.model_validate({"inputs": []}))


def test_custom_pyfunc_columns_strings_and_params(tmp_path: Path) -> None:
    save_scorer(tmp_path / "scorer", tmp_path / "code")
    model = _load(tmp_path / "scorer")
    by_name = {t.name: t for t in model.inputs}
    assert (by_name["b"].datatype.value, by_name["name"].datatype.value) == ("INT64", "BYTES")
    assert (
        by_name["name"].parameters is not None and by_name["name"].parameters.content_type == "str"
    )
    assert [t.name for t in model.outputs] == ["total", "label"]
    frame = pd.DataFrame({"a": [1.5, 2.0], "b": [2, 3], "name": ["x", "héllo"]})
    outputs = {o.name: o for o in model.predict(_columns_request(frame)).outputs}
    assert outputs["total"].data == [3.5, 5.0]
    assert outputs["label"].data == ["X", "HÉLLO"] and outputs["label"].datatype.value == "BYTES"
    scaled = {o.name: o for o in model.predict(_columns_request(frame, scale=2.0)).outputs}
    assert scaled["total"].data == [7.0, 10.0]


def test_tensor_signatures_single_and_dict(tmp_path: Path) -> None:
    save_tensors(tmp_path / "single", tmp_path / "code1", as_dict=False)
    model = _load(tmp_path / "single")
    assert [(t.name, t.datatype.value, t.shape) for t in model.inputs] == [
        ("input-0", "FP32", [-1, 3])
    ]
    assert model.settings.parameters.content_type == "np"
    request = InferenceRequest.model_validate(
        {
            "inputs": [
                {
                    "name": "anything",
                    "shape": [2, 3],
                    "datatype": "FP32",
                    "data": [1, 2, 3, 4, 5, 6],
                }
            ]
        }
    )
    [output] = model.predict(request).outputs
    assert (output.name, output.data) == ("output-0", [6.0, 15.0])

    save_tensors(tmp_path / "dict", tmp_path / "code2", as_dict=True)
    model = _load(tmp_path / "dict")
    assert model.settings.parameters.content_type == "dict"
    request = InferenceRequest.model_validate(
        {
            "inputs": [
                {"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [2, 3]},
                {"name": "y", "shape": [1, 2], "datatype": "FP32", "data": [4, 5]},
            ]
        }
    )
    [output] = model.predict(request).outputs
    assert (output.name, output.shape, output.data) == ("product", [1, 2], [8.0, 15.0])
    with pytest.raises(InvalidRequest, match=r"missing input\(s\) 'y'"):
        model.predict(InferenceRequest.model_validate({"inputs": [request.inputs[0]]}))


def test_uri_and_load_errors_name_the_folder(
    tmp_path: Path, iris_folder: tuple[Path, Any, Any]
) -> None:
    folder, _, _ = iris_folder
    holder = tmp_path / "holder"
    holder.mkdir()
    model = _load(holder, parameters={"uri": str(folder)})
    assert len(model.inputs) == 4
    with pytest.raises(ModelLoadError, match=f"{holder} is not an MLflow model folder"):
        _load(holder)
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "MLmodel").write_text("flavors: {}\n")
    with pytest.raises(ModelLoadError, match=f"MLflow cannot load {broken}"):
        _load(broken)


def test_settings_declared_metadata_wins(iris_folder: tuple[Path, Any, Any]) -> None:
    folder, _, _ = iris_folder
    declared = [{"name": "predict", "datatype": "INT64", "shape": [-1]}]
    model = _load(folder, outputs=declared)
    assert [t.name for t in model.outputs] == ["predict"]
    body = json.loads(model.settings.model_dump_json())
    assert body["parameters"]["content_type"] == "pd"


@pytest.mark.e2e
def test_served_end_to_end_over_rest_and_grpc(tmp_path: Path) -> None:
    """A real ``mlpack start`` serves an mlflow.sklearn model and a custom pyfunc."""
    import httpx
    import tritonclient.grpc as triton_grpc

    from tests.helpers.server import start_server

    root = tmp_path / "models"
    classifier, frame = save_iris(root / "iris")
    save_scorer(root / "scorer", tmp_path / "code")
    # The scorer is named by MLServer's implementation string, which mlpack accepts as an alias.
    implementations = {
        "iris": "mlpack_mlflow.MLflowModel",
        "scorer": "mlserver_mlflow.MLflowRuntime",
    }
    for name, implementation in implementations.items():
        (root / name / "model-settings.json").write_text(
            json.dumps({"name": name, "implementation": implementation})
        )
    server = start_server(root, tmp_path, timeout=180)
    try:
        metadata = httpx.get(f"{server.url}/v2/models/iris", timeout=120).json()
        assert [i["name"] for i in metadata["inputs"]] == IRIS_COLUMNS
        assert metadata["parameters"]["content_type"] == "pd"
        rows = frame.iloc[::25]
        body = {
            "inputs": [
                {"name": c, "shape": [len(rows)], "datatype": "FP64", "data": rows[c].tolist()}
                for c in IRIS_COLUMNS
            ]
        }
        answer = httpx.post(f"{server.url}/v2/models/iris/infer", json=body, timeout=120)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["data"] == classifier.predict(rows).tolist()

        body["inputs"] = body["inputs"][:3]
        refused = httpx.post(f"{server.url}/v2/models/iris/infer", json=body, timeout=120)
        assert refused.status_code == 400 and "petal_width" in refused.json()["error"]

        scored = httpx.post(
            f"{server.url}/v2/models/scorer/infer",
            timeout=120,
            json={
                "parameters": {"scale": 10.0},
                "inputs": [
                    {"name": "a", "shape": [1], "datatype": "FP64", "data": [0.5]},
                    {"name": "b", "shape": [1], "datatype": "INT64", "data": [1]},
                    {"name": "name", "shape": [1], "datatype": "BYTES", "data": ["ok"]},
                ],
            },
        )
        assert scored.status_code == 200, scored.text
        outputs = {o["name"]: o["data"] for o in scored.json()["outputs"]}
        assert outputs == {"total": [15.0], "label": ["OK"]}

        client = triton_grpc.InferenceServerClient(server.grpc_address)
        try:
            inputs = []
            for column in IRIS_COLUMNS:
                tensor = triton_grpc.InferInput(column, [len(rows)], "FP64")
                tensor.set_data_from_numpy(rows[column].to_numpy(dtype=np.float64))
                inputs.append(tensor)
            result = client.infer("iris", inputs)
            assert (
                result.as_numpy("output-0").reshape(-1).tolist()
                == classifier.predict(rows).tolist()
            )
            text = triton_grpc.InferInput("name", [1], "BYTES")
            text.set_data_from_numpy(np.array([b"grpc"], dtype=object))
            numbers = []
            for column, datatype, value in (("a", "FP64", np.float64), ("b", "INT64", np.int64)):
                tensor = triton_grpc.InferInput(column, [1], datatype)
                tensor.set_data_from_numpy(np.array([2], dtype=value))
                numbers.append(tensor)
            result = client.infer("scorer", [*numbers, text])
            assert result.as_numpy("total").reshape(-1).tolist() == [4.0]
            assert result.as_numpy("label").reshape(-1).tolist() == [b"GRPC"]
        finally:
            client.close()
    finally:
        server.stop()
