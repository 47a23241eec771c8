"""Regenerate mlpack/proto/inference_pb2{,_grpc}.py{,i} from mlpack/proto/inference.proto.

Usage (from the repository root):

    pip install -r scripts/requirements-proto.txt
    python scripts/gen_proto.py          # rewrite the generated files
    python scripts/gen_proto.py --check  # exit 1 if the checked-in files are stale

Two edits follow protoc, so the result works inside the package and next to
tritonclient (whose ``inference.*`` messages live in protobuf's default pool):

* the messages are registered in a private ``DescriptorPool`` (``POOL``) rather
  than the default one, which would raise "duplicate symbol 'inference.…'";
* the stub module imports the messages relatively (``from . import inference_pb2``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = Path("mlpack/proto/inference.proto")
PINNED_TOOLS = "1.81.1"
GENERATED = ("inference_pb2.py", "inference_pb2.pyi", "inference_pb2_grpc.py")

_EDITS: dict[str, list[tuple[str, str]]] = {
    "inference_pb2.py": [(
        "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(",
        (
            "# mlpack: a private pool, so tritonclient's inference.* messages can share the process.\n"
            "POOL = _descriptor_pool.DescriptorPool()\n"
            "DESCRIPTOR = POOL.AddSerializedFile("
        ),
    )],
    "inference_pb2_grpc.py": [(
        "from mlpack.proto import inference_pb2 as mlpack_dot_proto_dot_inference__pb2",
        "from . import inference_pb2 as mlpack_dot_proto_dot_inference__pb2",
    )],
    "inference_pb2.pyi": [(
        "DESCRIPTOR: _descriptor.FileDescriptor",
        (
            "from google.protobuf import descriptor_pool as _descriptor_pool\n\n"
            "POOL: _descriptor_pool.DescriptorPool\n"
            "DESCRIPTOR: _descriptor.FileDescriptor"
        ),
    )],
}


def _generate(out: Path) -> None:
    from grpc_tools import protoc

    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        str(ROOT / PROTO),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for name, edits in _EDITS.items():
        path = out / PROTO.parent / name
        text = path.read_text()
        for old, new in edits:
            if text.count(old) != 1:
                raise SystemExit(f"{name}: expected exactly one {old!r}; did grpcio-tools change?")
            text = text.replace(old, new)
        path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the checked-in files")
    options = parser.parse_args(argv)
    version = metadata.version("grpcio-tools")
    if version != PINNED_TOOLS:
        print(f"grpcio-tools {version} is installed but the pin is {PINNED_TOOLS}: "
              "pip install -r scripts/requirements-proto.txt", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        _generate(Path(tmp))
        stale = []
        for name in GENERATED:
            fresh = (Path(tmp) / PROTO.parent / name).read_text()
            target = ROOT / PROTO.parent / name
            if not target.exists() or target.read_text() != fresh:
                stale.append(name)
                if not options.check:
                    target.write_text(fresh)
    if options.check and stale:
        print(f"stale generated files: {', '.join(stale)}; run python scripts/gen_proto.py",
              file=sys.stderr)
        return 1
    print("up to date" if not stale else f"regenerated {', '.join(stale)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
