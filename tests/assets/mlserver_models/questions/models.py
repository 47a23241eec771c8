# decode_args, as in MLServer's codecs guide: the signature decides how inputs decode.
from typing import List

import numpy as np

from mlserver import MLModel
from mlserver.codecs import decode_args
from mlserver.logging import logger


class QuestionLength(MLModel):
    async def load(self) -> bool:
        self._scale = self._settings.parameters.extra.get("scale", 1)
        logger.info("questions model loaded with scale %s", self._scale)
        return True

    @decode_args
    async def predict(self, questions: List[str], weights: np.ndarray) -> np.ndarray:
        lengths = np.array([len(q) for q in questions], dtype=np.float64)
        return lengths * weights.reshape(-1) * self._scale  # NumpyCodec decodes [N] as [N, 1]
