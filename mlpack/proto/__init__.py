"""Open Inference Protocol gRPC messages and stubs, and their conversion to ``mlpack.types``.

Import the submodules you need (``mlpack.proto.convert``, ``mlpack.proto.inference_pb2``);
this package imports nothing itself, so protobuf and gRPC load only when used.
"""
