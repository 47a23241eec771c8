"""The ``pd`` content type: a request as a DataFrame, one input per column.

pandas is an optional extra (``pip install mlpack[pandas]``) and is imported
only when this codec is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidRequest
from ..types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    Parameters,
    RequestInput,
    ResponseOutput,
)
from .base import (
    RequestCodec,
    content_type_error,
    find_input_codec,
    input_content_types,
    register_request_codec,
)
from .tensors import ndarray_to_data, tensor_as_ndarray, to_datatype

if TYPE_CHECKING:
    import pandas as pd


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "the 'pd' content type needs pandas: install it with `pip install mlpack[pandas]`"
        ) from None
    return pandas


def _column(tensor: RequestInput | ResponseOutput, content_type: str | None) -> Any:
    """The column values of one tensor, decoded by its content type if it has one."""
    if content_type is not None:
        codec = find_input_codec(content_type=content_type)
        if codec is None:
            raise content_type_error(f"input '{tensor.name}'", content_type, input_content_types())
        if isinstance(tensor, RequestInput):
            return codec.decode_input(tensor)
        return codec.decode_output(tensor)
    array = tensor_as_ndarray(tensor)
    if tensor.datatype is Datatype.BYTES:
        array = np.array([_text(v) for v in array.reshape(-1)], dtype=object).reshape(array.shape)
    if array.ndim <= 1 or (array.ndim == 2 and array.shape[1] == 1):
        return array.reshape(-1)
    # Several values per row: each cell holds that row's values.
    return list(array.reshape(array.shape[0], -1))


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def _content_type(
    tensor: RequestInput | ResponseOutput, metadata: dict[str, MetadataTensor] | None
) -> str | None:
    if tensor.parameters is not None and tensor.parameters.content_type:
        return tensor.parameters.content_type
    meta = (metadata or {}).get(tensor.name)
    if meta is not None and meta.parameters is not None:
        return meta.parameters.content_type
    return None


def _frame(
    tensors: list[RequestInput] | list[ResponseOutput],
    metadata: dict[str, MetadataTensor] | None,
) -> pd.DataFrame:
    pd = _pandas()
    columns: dict[str, Any] = {}
    length: int | None = None
    for tensor in tensors:
        values = _column(tensor, _content_type(tensor, metadata))
        if length is not None and len(values) != length:
            raise InvalidRequest(
                f"input '{tensor.name}' has {len(values)} rows but the earlier inputs have "
                f"{length}; 'pd' needs every input to have the same number of rows"
            )
        length = len(values)
        if isinstance(values, list) and values and isinstance(values[0], np.ndarray):
            columns[tensor.name] = pd.Series(values, dtype=object)
        else:
            columns[tensor.name] = pd.Series(values)
    return pd.DataFrame(columns)


def _encode_series(name: str, series: Any, use_bytes: bool, output: bool) -> Any:
    """One column → a ResponseOutput (``output``) or a RequestInput."""
    pd = _pandas()
    kind = RequestInput if not output else ResponseOutput
    values = series.tolist()
    rows = len(values)
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        data = [v.isoformat() for v in series.dt.to_pydatetime()]
        return kind(
            name=name,
            datatype=Datatype.BYTES,
            shape=[rows, 1],
            data=[d.encode() for d in data] if use_bytes else data,
            parameters=Parameters(content_type="datetime"),
        )
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        if all(isinstance(v, str) for v in values):
            return kind(
                name=name,
                datatype=Datatype.BYTES,
                shape=[rows, 1],
                data=[v.encode() for v in values] if use_bytes else values,
                parameters=Parameters(content_type="str"),
            )
        if all(isinstance(v, bytes) for v in values):
            return kind(
                name=name,
                datatype=Datatype.BYTES,
                shape=[rows, 1],
                data=values if use_bytes else [_text(v) for v in values],
            )
        if rows and all(isinstance(v, (list, tuple, np.ndarray)) for v in values):
            array = np.asarray([np.asarray(v) for v in values])
            return kind(
                name=name,
                datatype=to_datatype(array.dtype),
                shape=[rows, *array.shape[1:]],
                data=ndarray_to_data(array),
            )
        raise InvalidRequest(f"column '{name}': cannot encode mixed values of dtype object")
    array = series.to_numpy()
    return kind(
        name=name, datatype=to_datatype(array.dtype), shape=[rows, 1], data=ndarray_to_data(array)
    )


@register_request_codec
class PandasCodec(RequestCodec):
    """Requests and responses ⇄ ``pandas.DataFrame``, one tensor per column."""

    ContentType = "pd"
    # A dotted name, matched without importing pandas.
    TypeHint = "pandas.DataFrame"

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        if not type(payload).__module__.startswith("pandas"):
            return False
        return isinstance(payload, _pandas().DataFrame)

    @classmethod
    def encode_response(
        cls,
        model_name: str,
        payload: pd.DataFrame,
        model_version: str | None = None,
        use_bytes: bool = False,
        **kwargs: Any,
    ) -> InferenceResponse:
        outputs = [
            _encode_series(str(name), payload[name], use_bytes, output=True)
            for name in payload.columns
        ]
        return InferenceResponse(
            model_name=model_name,
            model_version=model_version,
            parameters=Parameters(content_type=cls.ContentType),
            outputs=outputs,
        )

    @classmethod
    def decode_response(cls, response: InferenceResponse) -> pd.DataFrame:
        return _frame(response.outputs, None)

    @classmethod
    def encode_request(
        cls, payload: pd.DataFrame, use_bytes: bool = True, **kwargs: Any
    ) -> InferenceRequest:
        inputs = [
            _encode_series(str(name), payload[name], use_bytes, output=False)
            for name in payload.columns
        ]
        return InferenceRequest(parameters=Parameters(content_type=cls.ContentType), inputs=inputs)

    @classmethod
    def decode_request(
        cls,
        request: InferenceRequest,
        metadata_inputs: dict[str, MetadataTensor] | None = None,
        **kwargs: Any,
    ) -> pd.DataFrame:
        return _frame(request.inputs, metadata_inputs)
