"""Train the model this project serves: writes model.joblib (iris, shipped with scikit-learn)."""

from __future__ import annotations

from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent


def train(destination: Path = HERE / "model.joblib") -> Path:
    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    joblib.dump(model, destination)
    return destination


if __name__ == "__main__":
    print(f"wrote {train()}")
