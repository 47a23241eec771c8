"""Sums two declared inputs; negative values fail. Logs a custom metric and log lines."""

import logging

import numpy as np

import mlpack
from mlpack import MLModel
from mlpack.codecs.tensors import tensor_as_ndarray
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput

logger = logging.getLogger("documented")


class DocumentedModel(MLModel):
    async def load(self) -> bool:
        mlpack.register("documented_rows", "Rows per request seen by the documented model")
        logger.info("documented model loading")
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        arrays = {i.name: tensor_as_ndarray(i).astype(np.float64) for i in payload.inputs}
        total = arrays["petal_length"] + arrays["petal_width"]
        if (total < 0).any():
            try:
                raise ValueError("negative petals")
            except ValueError:
                logger.exception("rejecting a request")
                raise
        mlpack.log(documented_rows=len(total))
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                ResponseOutput(
                    name="petal_total",
                    shape=list(total.shape),
                    datatype="FP64",
                    data=total.tolist(),
                )
            ],
        )
