"""A model with no artefact, served next to the iris versions."""

from __future__ import annotations

import numpy as np

from mlpack import MLModel
from mlpack.codecs import decode_args


class Doubler(MLModel):
    @decode_args
    async def predict(self, x: np.ndarray) -> np.ndarray:
        return x * 2
