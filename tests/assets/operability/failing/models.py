"""Fails every prediction with a KeyError raised two calls deep (a real traceback)."""

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse


def _lookup(table: dict[str, int], key: str) -> int:
    return table[key]


class FailingModel(MLModel):
    def predict(self, payload: InferenceRequest) -> InferenceResponse:
        _lookup({}, "missing-feature")
        raise AssertionError("unreachable")
