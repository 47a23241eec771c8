"""The model this project serves. Edit ``load`` and ``predict``; keep the class name
in step with ``implementation`` in ``model-settings.json``."""

from __future__ import annotations

import numpy as np

from mlpack import MLModel
from mlpack.codecs import decode_args


class Model(MLModel):
    """Multiplies its input by ``parameters.extra.scale`` (2.0 unless set)."""

    async def load(self) -> bool:
        # Read artefacts here: self.settings.folder is this project's folder and
        # self.settings.parameters.uri the file model-settings.json points at.
        self.scale = float(self.settings.parameters.extra.get("scale", 2.0))
        return True

    @decode_args
    async def predict(self, x: np.ndarray) -> np.ndarray:
        # Parameter names are input names, type hints pick the codec (np.ndarray,
        # list[str], pandas.DataFrame, ...); the return value becomes output `y`
        # (named in model-settings.json's "outputs").
        return x * self.scale
