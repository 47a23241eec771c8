"""Sums each row of ``x`` and counts the rows it served in a custom metric (``bench_rows``)."""

import numpy as np

import mlpack
from mlpack import MLModel
from mlpack.codecs.tensors import tensor_as_ndarray
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class RowsModel(MLModel):
    async def load(self) -> bool:
        mlpack.register("bench_rows", "Rows served by the rows model", buckets=[1, 4, 16, 64])
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = tensor_as_ndarray(payload.inputs[0]).astype(np.float64)
        total = x.reshape(len(x), -1).sum(axis=1)
        mlpack.log(bench_rows=len(total))
        return InferenceResponse(
            model_name=self.name,
            outputs=[ResponseOutput(name="total", shape=[len(total)], datatype="FP64", data=total)],
        )
