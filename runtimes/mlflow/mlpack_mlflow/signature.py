"""An MLflow model signature → Open Inference Protocol metadata tensors.

Column-based schemas (``ColSpec``) become one tensor per column, shape ``[-1]``, served
with the ``pd`` content type; tensor-based schemas (``TensorSpec``) keep their dtype
and shape and are served with ``np``. Unnamed entries are called ``input-<i>`` and
``output-<i>``, as MLServer's runtime calls them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlpack.codecs.tensors import to_datatype
from mlpack.types import Datatype, MetadataTensor, Parameters

INPUT_PREFIX = "input-"
OUTPUT_PREFIX = "output-"

# MLflow column type name → (protocol datatype, content type of the tensor).
_COLUMN_TYPES: dict[str, tuple[Datatype, str | None]] = {
    "boolean": (Datatype.BOOL, None),
    "integer": (Datatype.INT32, None),
    "long": (Datatype.INT64, None),
    "float": (Datatype.FP32, None),
    "double": (Datatype.FP64, None),
    "string": (Datatype.BYTES, "str"),
    "binary": (Datatype.BYTES, "base64"),
    "datetime": (Datatype.BYTES, "datetime"),
}


def is_tensor_schema(schema: Any) -> bool:
    """True for a ``TensorSpec`` schema (served as ``np``), False for columns (``pd``)."""
    return bool(schema.is_tensor_spec())


def metadata_tensors(schema: Any, prefix: str) -> list[MetadataTensor]:
    """One metadata tensor per column or tensor of an MLflow ``Schema``."""
    tensors = []
    for index, spec in enumerate(schema.inputs):
        name = spec.name or f"{prefix}{index}"
        if is_tensor_schema(schema):
            datatype = to_datatype(np.dtype(spec.type))
            shape = [int(dim) for dim in spec.shape]
            tensors.append(MetadataTensor(name=name, datatype=datatype, shape=shape))
            continue
        datatype, content_type = _COLUMN_TYPES.get(_type_name(spec.type), (Datatype.BYTES, None))
        parameters = Parameters(content_type=content_type) if content_type else None
        tensors.append(
            MetadataTensor(name=name, datatype=datatype, shape=[-1], parameters=parameters)
        )
    return tensors


def required_names(schema: Any, prefix: str) -> list[str]:
    """The names a request must send (columns marked optional are left out)."""
    return [
        spec.name or f"{prefix}{index}"
        for index, spec in enumerate(schema.inputs)
        if getattr(spec, "required", True)
    ]


def _type_name(column_type: Any) -> str:
    # DataType members have a name ("double"); Array/Object/Map types do not.
    return str(getattr(column_type, "name", ""))
