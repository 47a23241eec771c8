"""Formats its input as a text table with tabulate, and says which tabulate it used."""

import os
import sys

import tabulate

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class TableModel(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        rows = [[value] for value in payload.inputs[0].data]
        table = tabulate.tabulate(rows, headers=[payload.inputs[0].name])
        outputs = [
            ResponseOutput(name=name, shape=[1], datatype="BYTES", data=[value])
            for name, value in (
                ("table", table),
                ("tabulate_version", tabulate.__version__),
                ("python", sys.executable),
                ("pid", str(os.getpid())),
            )
        ]
        return InferenceResponse(model_name=self.name, outputs=outputs)
