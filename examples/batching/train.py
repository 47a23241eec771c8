"""Train the random forest both models serve: writes model.joblib.

A forest's ``predict`` costs about the same for 1 row as for 32 (it walks every tree once
per call), which is exactly the kind of model adaptive batching speeds up.
"""

from __future__ import annotations

from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

HERE = Path(__file__).resolve().parent


def train(destination: Path = HERE / "model.joblib") -> Path:
    features, labels = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=50, max_depth=6, random_state=0)
    joblib.dump(forest.fit(features, labels), destination)
    return destination


if __name__ == "__main__":
    print(f"wrote {train()}")
