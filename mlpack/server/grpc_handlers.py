"""The method table of ``inference.GRPCInferenceService``, built from the service descriptor.

Replaces the generated ``add_GRPCInferenceServiceServicer_to_server`` for two reasons:

- a request that is not a valid protobuf message becomes an ``Undecodable`` marker instead
  of an exception inside grpc's own code (which answers UNKNOWN and logs a traceback), so
  the servicer answers INVALID_ARGUMENT naming the message type, and counts the call;
- ``ModelInfer`` answers bytes it serialized itself (``response_serializer`` None), so the
  size check reads ``len`` of the bytes that are sent instead of a second ``ByteSize`` pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from ..proto import inference_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
# Methods whose handler returns serialized bytes.
RAW_RESPONSES = frozenset({"ModelInfer"})


class Undecodable:
    """A request body that did not parse as its method's message type."""

    __slots__ = ("error", "type_name")

    def __init__(self, type_name: str, error: str) -> None:
        self.type_name = type_name
        self.error = error

    @property
    def message(self) -> str:
        return f"the request is not a valid {self.type_name} message ({self.error})"


def _decoder(message_type: Any) -> Callable[[bytes], Any]:
    parse = message_type.FromString
    name = message_type.DESCRIPTOR.full_name

    def decode(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as error:
            return Undecodable(name, str(error) or "malformed protobuf")

    return decode


_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def method_handlers(servicer: object) -> dict[str, grpc.RpcMethodHandler]:
    """``servicer``'s method handlers by method name, decoding with ``Undecodable`` markers."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in SERVICE.methods:
        request_type = getattr(pb, method.input_type.name)
        response_type = getattr(pb, method.output_type.name)
        make = _KINDS[(method.client_streaming, method.server_streaming)]
        raw = method.name in RAW_RESPONSES
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=_decoder(request_type),
            response_serializer=None if raw else response_type.SerializeToString,
        )
    return handlers


def add_inference_service(servicer: object, server: grpc.aio.Server) -> None:
    """Serve ``servicer`` as ``inference.GRPCInferenceService`` on ``server``."""
    handlers = method_handlers(servicer)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )
    # Looked up by full method name before any generic handler (grpcio >= 1.63).
    register = getattr(server, "add_registered_method_handlers", None)
    if register is not None:
        register(SERVICE.full_name, handlers)
