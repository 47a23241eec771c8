"""Train an iris classifier that answers species names and save it as an MLflow model.

Writes ``model/`` next to this file (``MLmodel``, the pickled pipeline, requirements).
No tracking server and no network: the model is saved straight to a folder, as
``mlflow.sklearn.log_model`` would store it under a run.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import mlflow.sklearn
import pandas as pd
import sklearn
import skops
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent


def train(destination: Path = HERE / "model") -> Path:
    iris = load_iris(as_frame=True)
    features = iris.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    species = pd.Series(iris.target_names[iris.target], name="species")
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    pipeline.fit(features, species)
    if (destination / "MLmodel").is_file():
        shutil.rmtree(destination)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's advice on input examples
        mlflow.sklearn.save_model(
            pipeline,
            str(destination),
            signature=infer_signature(features, pipeline.predict(features)),
            pip_requirements=[
                f"scikit-learn=={sklearn.__version__}",
                f"skops=={skops.__version__}",
            ],
        )
    return destination


if __name__ == "__main__":
    print(f"wrote {train()}")
