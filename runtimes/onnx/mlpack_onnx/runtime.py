"""Serve an ONNX graph (``model.onnx``) with ONNX Runtime on the CPU.

The graph's tensor inputs and outputs become the model's metadata, so the server
checks every request's input names, datatypes and shapes against the graph before
the session runs. Non-tensor outputs (e.g. scikit-learn's ZipMap) are not served:
convert classifiers with ``options={"zipmap": False}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlpack.codecs.tensors import tensor_as_ndarray, to_dtype
from mlpack.errors import InvalidRequest, ModelLoadError
from mlpack.model import MLModel
from mlpack.runtime_support import array_output, artefact_path, requested_outputs
from mlpack.types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
)

DEFAULT_URI = "model.onnx"
# ``parameters.extra`` keys copied onto ``onnxruntime.SessionOptions``.
SESSION_OPTIONS = ("intra_op_num_threads", "inter_op_num_threads")

ONNX_TO_DATATYPE = {
    "tensor(bool)": Datatype.BOOL,
    "tensor(uint8)": Datatype.UINT8,
    "tensor(uint16)": Datatype.UINT16,
    "tensor(uint32)": Datatype.UINT32,
    "tensor(uint64)": Datatype.UINT64,
    "tensor(int8)": Datatype.INT8,
    "tensor(int16)": Datatype.INT16,
    "tensor(int32)": Datatype.INT32,
    "tensor(int64)": Datatype.INT64,
    "tensor(float16)": Datatype.FP16,
    "tensor(float)": Datatype.FP32,
    "tensor(double)": Datatype.FP64,
    "tensor(string)": Datatype.BYTES,
}


def graph_tensor(node: Any) -> MetadataTensor | None:
    """Metadata for one graph input/output (symbolic or unknown dimensions → -1)."""
    datatype = ONNX_TO_DATATYPE.get(node.type)
    if datatype is None:
        return None
    shape = [dim if isinstance(dim, int) and dim >= 0 else -1 for dim in (node.shape or [])]
    return MetadataTensor(name=node.name, datatype=datatype, shape=shape)


class OnnxModel(MLModel):
    """Runs an ``onnxruntime.InferenceSession``; outputs are the graph's tensor outputs.

    ``parameters.extra``: ``intra_op_num_threads``, ``inter_op_num_threads`` (session threads).
    """

    async def load(self) -> bool:
        path = artefact_path(self, DEFAULT_URI)
        import onnxruntime as ort

        options = ort.SessionOptions()
        extra = self.settings.parameters.extra
        for key in SESSION_OPTIONS:
            if extra.get(key) is not None:
                setattr(options, key, int(extra[key]))
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        inputs = [graph_tensor(node) for node in self._session.get_inputs()]
        unsupported = [
            n.name for n, t in zip(self._session.get_inputs(), inputs, strict=True) if t is None
        ]
        if unsupported:
            raise ModelLoadError(
                f"model '{self.name}': graph inputs {unsupported} are not tensors mlpack can send"
            )
        self.inputs = [t for t in inputs if t is not None]
        self._graph_outputs = [t for t in map(graph_tensor, self._session.get_outputs()) if t]
        available = {t.name for t in self._graph_outputs}
        declared = [t.name for t in self.outputs]
        unknown = [name for name in declared if name not in available]
        if unknown:
            raise ModelLoadError(
                f"model '{self.name}': declared outputs {unknown} are not tensor outputs of the "
                f"graph (available: {sorted(available)})"
            )
        self._default_outputs = declared or [t.name for t in self._graph_outputs]
        self._output_names = sorted(available)
        self.outputs = self._graph_outputs
        return True

    def predict(self, payload: InferenceRequest) -> InferenceResponse:  # type: ignore[override]
        feed = {
            request_input.name: self._as_feed(tensor_as_ndarray(request_input))
            for request_input in payload.inputs
        }
        missing = [t.name for t in self.inputs if t.name not in feed]
        if missing:
            raise InvalidRequest(
                f"model '{self.name}': missing input(s) {', '.join(repr(n) for n in missing)}"
            )
        names = requested_outputs(self, payload, self._output_names, self._default_outputs)
        results = self._session.run(names, feed)
        outputs = [
            array_output(name, np.asarray(result))
            for name, result in zip(names, results, strict=True)
        ]
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=outputs)

    @staticmethod
    def _as_feed(array: np.ndarray) -> np.ndarray:
        if array.dtype == to_dtype(Datatype.BYTES):
            # ONNX Runtime's string tensors take Python ``str`` elements.
            text = np.empty(array.shape, dtype=object)
            text.reshape(-1)[:] = [
                v.decode("utf-8") if isinstance(v, bytes) else v for v in array.reshape(-1)
            ]
            return text
        return array
