"""LightGBMModel against lightgbm's own predict, on tiny models trained here."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

lgb = pytest.importorskip("lightgbm")

from mlpack.errors import InvalidRequest, ModelLoadError
from mlpack.settings import ModelSettings
from mlpack.types import InferenceRequest
from mlpack_lightgbm import LightGBMModel

RNG = np.random.default_rng(0)
FEATURES = RNG.random((80, 3))
PARAMS = {"verbose": -1, "num_leaves": 4, "min_data_in_leaf": 5}


def _train(labels: np.ndarray, **params: object) -> lgb.Booster:
    return lgb.train({**PARAMS, **params}, lgb.Dataset(FEATURES, labels), num_boost_round=4)


def _load(tmp_path: Path, booster: lgb.Booster, **settings: object) -> LightGBMModel:
    booster.save_model(str(tmp_path / "model.txt"))
    model = LightGBMModel(ModelSettings(name="lgb", folder=str(tmp_path), **settings))
    assert asyncio.run(model.load())
    return model


def _request(rows: np.ndarray, outputs: list[str] | None = None) -> InferenceRequest:
    body: dict[str, object] = {
        "inputs": [
            {
                "name": "x",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.reshape(-1).tolist(),
            }
        ]
    }
    if outputs:
        body["outputs"] = [{"name": name} for name in outputs]
    return InferenceRequest.model_validate(body)


def test_binary_classifier_matches_lightgbm(tmp_path: Path) -> None:
    booster = _train((FEATURES[:, 0] > 0.5).astype(int), objective="binary")
    model = _load(tmp_path, booster)
    rows = FEATURES[:6].astype(np.float32)
    response = model.predict(_request(rows, ["predict", "predict_proba"]))
    expected = booster.predict(rows)
    assert response.outputs[0].data == (expected > 0.5).astype(int).tolist()
    np.testing.assert_allclose(np.array(response.outputs[1].data).reshape(6, 2)[:, 1], expected)
    assert {t.name for t in model.outputs} == {"predict", "predict_proba"}


def test_multiclass_matches_lgbmclassifier(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    labels = (FEATURES[:, 0] * 3).astype(int)
    classifier = lgb.LGBMClassifier(n_estimators=4, **PARAMS).fit(FEATURES, labels)
    model = _load(tmp_path, classifier.booster_)
    rows = FEATURES[:9].astype(np.float32)
    response = model.predict(_request(rows, ["predict", "predict_proba"]))
    assert response.outputs[0].data == classifier.predict(rows).tolist()
    np.testing.assert_allclose(
        np.array(response.outputs[1].data).reshape(9, 3), classifier.predict_proba(rows), rtol=1e-6
    )


def test_regressor_matches_lightgbm(tmp_path: Path) -> None:
    booster = _train(FEATURES.sum(axis=1), objective="regression")
    model = _load(tmp_path, booster, parameters={"extra": {"num_threads": 1}})
    rows = FEATURES[:4].astype(np.float32)
    response = model.predict(_request(rows))
    np.testing.assert_allclose(response.outputs[0].data, booster.predict(rows))
    with pytest.raises(InvalidRequest, match="no output 'predict_proba'"):
        model.predict(_request(rows, ["predict_proba"]))
    with pytest.raises(InvalidRequest, match=r"expects shape \[-1, 3\], got \[4, 2\]"):
        model.predict(_request(rows[:, :2]))


def test_missing_artefact(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"model.txt not found"):
        asyncio.run(LightGBMModel(ModelSettings(name="lgb", folder=str(tmp_path))).load())
