"""MLflow's ``/invocations`` scoring format ⇄ Open Inference Protocol requests.

What ``mlflow models serve`` accepts: a JSON object with exactly one of
``dataframe_split`` (``{"columns": [...], "data": [[...], ...]}``), ``dataframe_records``
(``[{column: value}, ...]``), ``instances`` or ``inputs`` (a list of rows or tensors, or
an object of named columns/tensors), plus optional ``params``; or a CSV table with a
header row (``text/csv``). Columns become one tensor each (the ``pd`` content type, the
pyfunc gets a DataFrame); tensors keep their nesting as their shape. Datatypes come from
the model's signature (its metadata) or, without one, from the values. The answer is
MLflow's: ``{"predictions": ...}`` with records for a DataFrame result, a (nested) list
for a single output and an object of lists for several.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any, ClassVar

import numpy as np
import orjson

from mlpack.errors import InvalidRequest
from mlpack.model_routes import ModelRoute
from mlpack.types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataTensor,
    Parameters,
    RequestInput,
)

JSON = "application/json"
CSV = "text/csv"
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
PARAMS = "params"
_FLOATS = {Datatype.FP16, Datatype.FP32, Datatype.FP64}
_INTEGERS = {
    Datatype.INT8,
    Datatype.INT16,
    Datatype.INT32,
    Datatype.INT64,
    Datatype.UINT8,
    Datatype.UINT16,
    Datatype.UINT32,
    Datatype.UINT64,
}
_DESCRIPTION = """MLflow's scoring route, as `mlflow models serve` answers it, for the model
named in the server's `model_routes` setting.

**JSON** (`application/json`): an object with exactly one of
`dataframe_split` (`{"columns": [...], "data": [[...], ...]}`), `dataframe_records`
(`[{"column": value}, ...]`), `instances` or `inputs` (a list of rows or tensors, or an
object of named columns or tensors), and optionally `params` (the signature's parameters).
**CSV** (`text/csv`): a header row with the column names, then one row per line.

The answer is `{"predictions": ...}`: one record per row when the model answers a
DataFrame, a list (nested as the result's shape) for one output, an object of lists for
several. Errors are `{"error": message}` (400 for input that does not fit the model's
signature, 415 for another content type)."""


class Invocations(ModelRoute):
    """``POST /invocations``: MLflow's scoring formats in, ``{"predictions": ...}`` out."""

    path: ClassVar[str] = "/invocations"
    media_types: ClassVar[frozenset[str]] = frozenset({JSON, CSV})
    summary: ClassVar[str] = "MLflow scoring (/invocations)"
    description: ClassVar[str] = _DESCRIPTION
    request_examples: ClassVar[dict[str, dict[str, Any]]] = {
        JSON: {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0], [3.0, 4.0]]}},
    }

    def to_request(
        self, body: bytes, media_type: str, metadata: MetadataModelResponse
    ) -> InferenceRequest:
        inputs = metadata.inputs or []
        if media_type == CSV:
            return _columns_request(_csv_columns(body, inputs), inputs, None)
        payload = _json_object(body)
        params = _params(payload)
        present = [key for key in FORMATS if key in payload]
        if len(present) != 1:
            raise InvalidRequest(
                "the body must hold exactly one of "
                f"{', '.join(repr(k) for k in FORMATS)} (and optionally 'params'); "
                f"got keys {sorted(payload)}"
            )
        key = present[0]
        value = payload[key]
        if key == "dataframe_split":
            return _columns_request(_split_columns(value, inputs), inputs, params)
        if key == "dataframe_records" or _is_records(value):
            return _columns_request(_record_columns(value, key), inputs, params)
        return _tensor_request(value, key, metadata, params)

    def to_answer(self, response: InferenceResponse, metadata: MetadataModelResponse) -> Any:
        outputs = response.outputs
        as_frame = response.parameters is not None and response.parameters.content_type == "pd"
        if as_frame and outputs:
            columns = {o.name: _column(o.data, o.shape) for o in outputs}
            rows = min(len(values) for values in columns.values())
            records = [{name: values[i] for name, values in columns.items()} for i in range(rows)]
            return {"predictions": records}
        if len(outputs) == 1:
            return {"predictions": _nested(outputs[0].data, outputs[0].shape)}
        return {"predictions": {o.name: _nested(o.data, o.shape) for o in outputs}}


# -- JSON ---------------------------------------------------------------------------------
def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise InvalidRequest("request body is empty; expected an MLflow scoring JSON object")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(f"request body is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise InvalidRequest(
            "the body must be a JSON object with one of "
            f"{', '.join(repr(k) for k in FORMATS)}; got {type(payload).__name__}"
        )
    return payload


def _params(payload: dict[str, Any]) -> dict[str, Any] | None:
    params = payload.get(PARAMS)
    if params is None:
        return None
    if not isinstance(params, dict):
        raise InvalidRequest(f"'params' must be an object, got {type(params).__name__}")
    reserved = sorted(set(params) & {"content_type", "headers"})
    if reserved:
        raise InvalidRequest(f"'params' may not set {reserved}")
    return params


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(r, dict) for r in value)


def _split_columns(value: Any, inputs: list[MetadataTensor]) -> dict[str, list[Any]]:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise InvalidRequest(
            "'dataframe_split' must be an object with 'data' (a list of rows) and 'columns'"
        )
    rows = value["data"]
    names = value.get("columns")
    if names is None:
        names = [t.name for t in inputs]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidRequest("'dataframe_split.columns' must be a list of column names")
    if len(set(names)) != len(names):
        raise InvalidRequest(f"'dataframe_split.columns' repeats a name: {names}")
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            raise InvalidRequest(
                f"'dataframe_split.data' row {index} must be a list of {len(names)} values "
                f"(one per column {names})"
            )
        for name, item in zip(names, row, strict=True):
            columns[name].append(item)
    return columns


def _record_columns(value: Any, key: str) -> dict[str, list[Any]]:
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise InvalidRequest(f"'{key}' must be a list of objects (one per row)")
    names: dict[str, None] = {}
    for record in value:
        names.update(dict.fromkeys(record))
    return {name: [record.get(name) for record in value] for name in names}


# -- CSV ----------------------------------------------------------------------------------
def _csv_columns(body: bytes, inputs: list[MetadataTensor]) -> dict[str, list[Any]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest("the CSV body is not UTF-8 text") from None
    try:
        table = list(csv.reader(io.StringIO(text)))
    except csv.Error as error:
        raise InvalidRequest(f"the CSV body cannot be read: {error}") from None
    table = [row for row in table if row]
    if not table:
        raise InvalidRequest("the CSV body is empty; send a header row and one row per line")
    header = [name.strip() for name in table[0]]
    if len(set(header)) != len(header):
        raise InvalidRequest(f"the CSV header repeats a column name: {header}")
    declared = {t.name: t.datatype for t in inputs}
    columns: dict[str, list[Any]] = {name: [] for name in header}
    for line, row in enumerate(table[1:], start=2):
        if len(row) != len(header):
            raise InvalidRequest(
                f"CSV line {line} has {len(row)} values; the header has {len(header)}"
            )
        for name, item in zip(header, row, strict=True):
            columns[name].append(item)
    return {name: _csv_values(name, values, declared.get(name)) for name, values in columns.items()}


def _csv_values(name: str, values: list[str], datatype: Datatype | None) -> list[Any]:
    """CSV text → typed values: by the signature's datatype, else guessed as pandas does."""
    if datatype is None:
        for guess in (Datatype.INT64, Datatype.FP64, Datatype.BOOL):
            try:
                return [_csv_value(v, guess) for v in values]
            except ValueError:
                continue
        return values
    try:
        return [_csv_value(v, datatype) for v in values]
    except ValueError as error:
        raise InvalidRequest(f"CSV column '{name}': {error} ({datatype.value} expected)") from None


def _csv_value(text: str, datatype: Datatype) -> Any:
    stripped = text.strip()
    if datatype in _FLOATS:
        return float(stripped) if stripped else math.nan
    if datatype in _INTEGERS:
        return int(stripped)
    if datatype is Datatype.BOOL:
        lowered = stripped.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise ValueError(f"{text!r} is not a boolean")
    return text


# -- requests -----------------------------------------------------------------------------
def _columns_request(
    columns: dict[str, list[Any]], inputs: list[MetadataTensor], params: dict[str, Any] | None
) -> InferenceRequest:
    if not columns:
        raise InvalidRequest("no columns in the request")
    declared = {t.name: t.datatype for t in inputs}
    tensors = []
    for name, values in columns.items():
        datatype = declared.get(name) or _guess_datatype(name, values)
        if datatype in _FLOATS:
            values = [math.nan if v is None else v for v in values]
        elif any(v is None for v in values):
            raise InvalidRequest(f"column '{name}' has missing values ({datatype.value})")
        tensors.append(RequestInput(name=name, shape=[len(values)], datatype=datatype, data=values))
    return InferenceRequest(inputs=tensors, parameters=_parameters("pd", params))


def _tensor_request(
    value: Any, key: str, metadata: MetadataModelResponse, params: dict[str, Any] | None
) -> InferenceRequest:
    content_type = metadata.parameters.content_type if metadata.parameters else None
    inputs = metadata.inputs or []
    if isinstance(value, dict):
        if content_type == "pd" or (content_type is None and _all_flat(value)):
            columns = {name: v if isinstance(v, list) else [v] for name, v in value.items()}
            return _columns_request(columns, inputs, params)
        declared = {t.name: t.datatype for t in inputs}
        tensors = [
            _tensor(name, v, declared.get(name), f"'{key}.{name}'") for name, v in value.items()
        ]
        if not tensors:
            raise InvalidRequest(f"'{key}' is an empty object")
        kind = "np" if len(tensors) == 1 else "dict"
        return InferenceRequest(inputs=tensors, parameters=_parameters(kind, params))
    if not isinstance(value, list) or not value:
        raise InvalidRequest(f"'{key}' must be a non-empty list (rows or a tensor) or an object")
    if content_type == "pd":
        names = [t.name for t in inputs]
        if not all(isinstance(row, list) and len(row) == len(names) for row in value):
            raise InvalidRequest(
                f"this model takes columns {names}: send rows of {len(names)} values, "
                "or use 'dataframe_split' / 'dataframe_records'"
            )
        columns = {name: [row[i] for row in value] for i, name in enumerate(names)}
        return _columns_request(columns, inputs, params)
    if len(inputs) > 1:
        raise InvalidRequest(
            f"this model takes {len(inputs)} tensors ({', '.join(t.name for t in inputs)}): "
            f"send '{key}' as an object of named tensors"
        )
    name = inputs[0].name if inputs else "input-0"
    datatype = inputs[0].datatype if inputs else None
    tensor = _tensor(name, value, datatype, f"'{key}'")
    return InferenceRequest(inputs=[tensor], parameters=_parameters("np", params))


def _all_flat(value: dict[str, Any]) -> bool:
    return all(
        not isinstance(v, (list, dict)) or all(not isinstance(i, (list, dict)) for i in v)
        for v in value.values()
    )


def _tensor(name: str, value: Any, datatype: Datatype | None, where: str) -> RequestInput:
    shape, flat = _flatten(value, where)
    return RequestInput(
        name=name, shape=shape, datatype=datatype or _guess_datatype(name, flat), data=flat
    )


def _flatten(value: Any, where: str) -> tuple[list[int], list[Any]]:
    """A nested list's shape and its elements in row-major order (ragged lists refused)."""
    if not isinstance(value, list):
        return [1], [value]
    shape: list[int] = []
    level: list[Any] = [value]
    while level and all(isinstance(item, list) for item in level):
        widths = {len(item) for item in level}
        if len(widths) != 1:
            raise InvalidRequest(f"{where} is ragged: its rows at depth {len(shape)} differ")
        shape.append(widths.pop())
        level = [element for item in level for element in item]
    if any(isinstance(item, (list, dict)) for item in level):
        raise InvalidRequest(f"{where} is ragged or holds objects: expected a nested list")
    return shape, level


def _guess_datatype(name: str, values: list[Any]) -> Datatype:
    present = [v for v in values if v is not None]
    if not present:
        return Datatype.FP64
    if all(isinstance(v, bool) for v in present):
        return Datatype.BOOL
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return Datatype.INT64 if len(present) == len(values) else Datatype.FP64
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return Datatype.FP64
    if all(isinstance(v, str) for v in present):
        return Datatype.BYTES
    kinds = sorted({type(v).__name__ for v in present})
    raise InvalidRequest(f"column '{name}' mixes values of types {kinds}")


def _parameters(content_type: str, params: dict[str, Any] | None) -> Parameters:
    return Parameters(content_type=content_type, **(params or {}))


# -- answers ------------------------------------------------------------------------------
def _column(data: Any, shape: list[int]) -> list[Any]:
    """One DataFrame column's values: scalars, or lists when a cell holds several."""
    rows = shape[0] if shape else len(data)
    array = data if isinstance(data, np.ndarray) else np.asarray(data, dtype=object)
    cells = array.reshape(rows, -1) if rows else array.reshape(0, 1)
    return [cell[0] if len(cell) == 1 else cell for cell in cells.tolist()]


def _nested(data: Any, shape: list[int]) -> list[Any]:
    """Flat output data → a list nested as ``shape`` (``[N]`` and ``[N, 1]`` stay as sent)."""
    array = np.asarray(data, dtype=object) if not isinstance(data, np.ndarray) else data
    try:
        array = array.reshape(shape)
    except ValueError:
        array = array.reshape(-1)
    values: list[Any] = array.tolist()
    return values
