"""Open Inference Protocol (KServe V2) types.

Field names follow the protocol (and MLServer's ``mlserver.types``), so code
written against MLServer's types works after changing the import.
"""

from __future__ import annotations

import functools
from enum import Enum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, RootModel
from pydantic_core import PydanticUndefined

M = TypeVar("M", bound=BaseModel)


class Datatype(str, Enum):
    """Tensor element types of the protocol."""

    BOOL = "BOOL"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    FP16 = "FP16"
    FP32 = "FP32"
    FP64 = "FP64"
    BYTES = "BYTES"


_DATATYPES: dict[str, Datatype] = {datatype.value: datatype for datatype in Datatype}


def as_datatype(value: Datatype | str) -> Datatype:
    """``Datatype(value)`` at the cost of a dict lookup (``ValueError`` for an unknown name);
    the codecs convert once per tensor on every request."""
    found = _DATATYPES.get(value)
    return found if found is not None else Datatype(value)


class State(str, Enum):
    """Model states reported by the repository index."""

    UNKNOWN = "UNKNOWN"
    READY = "READY"
    UNAVAILABLE = "UNAVAILABLE"
    LOADING = "LOADING"
    UNLOADING = "UNLOADING"


class _Model(BaseModel):
    model_config = ConfigDict(
        protected_namespaces=(), populate_by_name=True, use_enum_values=False, extra="ignore"
    )

    def dict(self, **kwargs: Any) -> dict[str, Any]:
        """MLServer-style alias of ``model_dump`` that skips unset optional fields."""
        kwargs.setdefault("exclude_none", True)
        return self.model_dump(mode="json", **kwargs)


class Parameters(_Model):
    """Free-form parameters; unknown keys are kept."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    content_type: str | None = None
    headers: dict[str, Any] | None = None


class MetadataTensor(_Model):
    name: str
    datatype: Datatype
    shape: list[int]
    parameters: Parameters | None = None


class RequestInput(_Model):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = None
    data: Any = None

    # The validated numpy array (or list of bytes for BYTES), filled once by
    # mlpack.codecs.tensors so codecs never decode the same data twice.
    _decoded: Any = PrivateAttr(default=None)
    # True when the JSON this input came from holds no ``true``/``false`` anywhere, so
    # decoding may skip looking for booleans among its numbers.
    _no_booleans: bool = PrivateAttr(default=False)


class RequestOutput(_Model):
    name: str
    parameters: Parameters | None = None


class ResponseOutput(_Model):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = None
    data: Any = None


class InferenceRequest(_Model):
    id: str | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class InferenceResponse(_Model):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class MetadataServerResponse(_Model):
    name: str
    version: str
    extensions: list[str] = Field(default_factory=list)


class MetadataServerErrorResponse(_Model):
    error: str


class MetadataModelResponse(_Model):
    name: str
    versions: list[str] | None = None
    platform: str = ""
    inputs: list[MetadataTensor] | None = None
    outputs: list[MetadataTensor] | None = None
    parameters: Parameters | None = None


class MetadataModelErrorResponse(_Model):
    error: str


class InferenceErrorResponse(_Model):
    error: str | None = None


class RepositoryIndexRequest(_Model):
    ready: bool | None = None


class RepositoryIndexResponseItem(_Model):
    name: str
    version: str | None = None
    state: State
    reason: str = ""


class RepositoryIndexResponse(RootModel[list[RepositoryIndexResponseItem]]):
    pass


class RepositoryLoadErrorResponse(_Model):
    error: str | None = None


class RepositoryUnloadErrorResponse(_Model):
    error: str | None = None


# ---- trusted construction: hot paths build several of these per request ---------------------

_new_object = object.__new__
_set_slot = object.__setattr__


class _Plan:
    """How ``trusted`` builds one model class: defaults in field order, what is required."""

    def __init__(self, model: type[BaseModel]) -> None:
        # A model that keeps unknown keys gets an empty dict of them, as model_construct gives.
        self.extra = model.model_config.get("extra") == "allow"
        self.defaults: dict[str, Any] = {}
        for name, info in model.model_fields.items():
            if info.default_factory is not None:
                raise TypeError(
                    f"{model.__name__}.{name} has a default factory: use model_construct"
                )
            self.defaults[name] = info.default
        self.required = frozenset(n for n, d in self.defaults.items() if d is PydanticUndefined)
        attributes = model.__private_attributes__ or {}
        self.private = {name: attr.default for name, attr in attributes.items()} or None


_plan = functools.cache(_Plan)


def trusted(model: type[M], /, **values: Any) -> M:
    """An instance of ``model`` from values known to be valid (no validation, no copies).

    What ``model_construct`` gives (omitted fields take their defaults and are left out of
    ``model_fields_set``) at about a third of its cost; the codecs and the worker IPC build
    several models per request. Missing required or unknown fields raise ``TypeError`` (a
    model that keeps extra keys, like ``Parameters``, starts with none).
    """
    plan = _plan(model)
    data = {**plan.defaults, **values}
    if len(data) != len(plan.defaults) or not plan.required <= values.keys():
        missing = sorted(plan.required - values.keys())
        unknown = sorted(data.keys() - plan.defaults.keys())
        raise TypeError(f"{model.__name__}: missing {missing}, unknown {unknown}")
    instance = _new_object(model)
    _set_slot(instance, "__dict__", data)
    _set_slot(instance, "__pydantic_fields_set__", set(values))
    _set_slot(instance, "__pydantic_extra__", {} if plan.extra else None)
    private = None if plan.private is None else plan.private.copy()  # each its own cache
    _set_slot(instance, "__pydantic_private__", private)
    return instance


def decoded_data(request_input: RequestInput) -> Any:
    """The input's validated data cached by ``mlpack.codecs.tensors`` (None until decoded).

    Reading the private attribute directly costs pydantic an AttributeError each time.
    """
    private = request_input.__pydantic_private__
    return None if private is None else private.get("_decoded")


__all__ = [
    "Datatype",
    "InferenceErrorResponse",
    "InferenceRequest",
    "InferenceResponse",
    "MetadataModelErrorResponse",
    "MetadataModelResponse",
    "MetadataServerErrorResponse",
    "MetadataServerResponse",
    "MetadataTensor",
    "Parameters",
    "RepositoryIndexRequest",
    "RepositoryIndexResponse",
    "RepositoryIndexResponseItem",
    "RepositoryLoadErrorResponse",
    "RepositoryUnloadErrorResponse",
    "RequestInput",
    "RequestOutput",
    "ResponseOutput",
    "State",
]
