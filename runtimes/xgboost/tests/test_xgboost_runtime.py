"""XGBoostModel against xgboost's own predict, on tiny models trained here."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")

from mlpack.errors import InvalidRequest, ModelLoadError
from mlpack.settings import ModelSettings
from mlpack.types import InferenceRequest
from mlpack_xgboost import XGBoostModel

RNG = np.random.default_rng(0)
FEATURES = RNG.random((60, 4))


def _train(objective: str, labels: np.ndarray, **params: object) -> xgb.Booster:
    return xgb.train(
        {"objective": objective, "max_depth": 2, **params},
        xgb.DMatrix(FEATURES, label=labels),
        num_boost_round=4,
    )


def _load(
    tmp_path: Path, booster: xgb.Booster, filename: str = "model.json", **settings: object
) -> XGBoostModel:
    with warnings.catch_warnings():
        # xgboost writes ``.bst`` as UBJSON and says so in a warning.
        warnings.simplefilter("ignore", UserWarning)
        booster.save_model(str(tmp_path / filename))
    model = XGBoostModel(ModelSettings(name="xgb", folder=str(tmp_path), **settings))
    assert asyncio.run(model.load())
    return model


def _request(rows: np.ndarray, outputs: list[str] | None = None) -> InferenceRequest:
    body: dict[str, object] = {
        "inputs": [
            {
                "name": "x",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.reshape(-1).tolist(),
            }
        ]
    }
    if outputs:
        body["outputs"] = [{"name": name} for name in outputs]
    return InferenceRequest.model_validate(body)


@pytest.mark.parametrize("filename", ["model.json", "model.ubj", "model.bst"])
def test_binary_classifier_matches_xgboost(tmp_path: Path, filename: str) -> None:
    booster = _train("binary:logistic", (FEATURES[:, 0] > 0.5).astype(int))
    model = _load(tmp_path, booster, filename)
    response = model.predict(_request(FEATURES[:5], ["predict", "predict_proba"]))
    expected = booster.predict(xgb.DMatrix(FEATURES[:5]))
    predict, proba = response.outputs
    assert predict.datatype.value == "INT64" and predict.shape == [5, 1]
    assert predict.data == (expected > 0.5).astype(int).tolist()
    assert proba.shape == [5, 2]
    np.testing.assert_allclose(np.array(proba.data).reshape(5, 2)[:, 1], expected, rtol=1e-6)
    assert {t.name for t in model.outputs} == {"predict", "predict_proba"}


def test_multiclass_matches_xgbclassifier(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    labels = (FEATURES[:, 0] * 3).astype(int)
    classifier = xgb.XGBClassifier(n_estimators=4, max_depth=2).fit(FEATURES, labels)
    model = _load(tmp_path, classifier.get_booster())
    response = model.predict(_request(FEATURES[:7], ["predict", "predict_proba"]))
    assert response.outputs[0].data == classifier.predict(FEATURES[:7]).tolist()
    np.testing.assert_allclose(
        np.array(response.outputs[1].data).reshape(7, 3),
        classifier.predict_proba(FEATURES[:7]),
        rtol=1e-6,
    )


def test_regressor_matches_xgboost(tmp_path: Path) -> None:
    booster = _train("reg:squarederror", FEATURES.sum(axis=1))
    model = _load(tmp_path, booster)
    response = model.predict(_request(FEATURES[:3]))
    assert [o.name for o in response.outputs] == ["predict"]
    np.testing.assert_allclose(
        response.outputs[0].data, booster.predict(xgb.DMatrix(FEATURES[:3])), rtol=1e-6
    )
    with pytest.raises(InvalidRequest, match="no output 'predict_proba'"):
        model.predict(_request(FEATURES[:3], ["predict_proba"]))


def test_wrong_feature_count_is_a_clear_error(tmp_path: Path) -> None:
    model = _load(tmp_path, _train("reg:squarederror", FEATURES.sum(axis=1)))
    with pytest.raises(InvalidRequest, match=r"expects shape \[-1, 4\], got \[2, 3\]"):
        model.predict(_request(FEATURES[:2, :3]))


def test_missing_artefact_and_nthread(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"model.json not found"):
        asyncio.run(XGBoostModel(ModelSettings(name="xgb", folder=str(tmp_path))).load())
    model = _load(
        tmp_path,
        _train("reg:squarederror", FEATURES.sum(axis=1)),
        parameters={"extra": {"nthread": 1}},
    )
    assert model.predict(_request(FEATURES[:1])).outputs[0].shape == [1, 1]
