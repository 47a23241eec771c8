"""Train both iris versions served by this example.

v1: logistic regression → models/iris/v1/model.joblib
v2: a small decision tree → models/iris/v2/model.joblib
"""

from __future__ import annotations

from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

HERE = Path(__file__).resolve().parent


def train(models: Path = HERE / "models") -> list[Path]:
    features, labels = load_iris(return_X_y=True)
    written = []
    for version, estimator in (
        ("v1", LogisticRegression(max_iter=1000)),
        ("v2", DecisionTreeClassifier(max_depth=3, random_state=0)),
    ):
        destination = models / "iris" / version / "model.joblib"
        joblib.dump(estimator.fit(features, labels), destination)
        written.append(destination)
    return written


if __name__ == "__main__":
    for path in train():
        print(f"wrote {path}")
