"""Micro-benchmark of JSON tensor decoding (``mlpack.codecs.tensors.decode_values``).

Runs each case for a fixed number of calls, several rounds, and prints the median and
best time per call in microseconds. ``--against FILE`` loads another version of
``tensors.py`` (e.g. ``git show main:mlpack/codecs/tensors.py > /tmp/t.py``) and runs
both in alternating rounds in the same process, so machine noise hits both alike::

    python -m benchmarks.decode --against /tmp/t.py
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import statistics
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np


def cases() -> dict[str, tuple[str, list[int], Any]]:
    """Name → (datatype, shape, data) covering the hot path's branches."""
    rng = np.random.default_rng(0)
    floats = rng.random(1000).tolist()
    return {
        "iris row FP64 [1,4]": ("FP64", [1, 4], [[5.1, 3.5, 1.4, 0.2]]),
        "FP32 1000": ("FP32", [1000], floats),
        "FP32 nested [100,10]": (
            "FP32",
            [100, 10],
            [floats[i : i + 10] for i in range(0, 1000, 10)],
        ),
        "FP64 with nulls 1000": (
            "FP64",
            [1000],
            [None if i % 7 == 0 else f for i, f in enumerate(floats)],
        ),
        "INT64 1000": ("INT64", [1000], list(range(1000))),
        "INT8 [100,10]": ("INT8", [100, 10], [[i % 100 for i in range(10)] for _ in range(100)]),
        "INT32 whole floats 1000": ("INT32", [1000], [float(i) for i in range(1000)]),
        "BOOL 1000": ("BOOL", [1000], [bool(i % 2) for i in range(1000)]),
        "FP32 ndarray 1000": ("FP32", [1000], np.asarray(floats, dtype=np.float32)),
        "INT64 ndarray of int32 1000": ("INT64", [1000], np.arange(1000, dtype=np.int32)),
    }


def _round(call: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls


def _load(path: str) -> ModuleType:
    """Another ``tensors.py``, imported inside ``mlpack.codecs`` (so relative imports work)."""
    spec = importlib.util.spec_from_file_location("mlpack.codecs._baseline_tensors", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--against", help="another tensors.py to run side by side")
    options = parser.parse_args()
    from mlpack.codecs import tensors
    from mlpack.types import Datatype

    modules = {"this": tensors}
    if options.against:
        modules["against"] = _load(options.against)
    header = "".join(f"{label + ' median':>16s}{label + ' best':>14s}" for label in modules)
    print(f"{'case (µs per call)':32s}{header}")
    for name, (datatype, shape, data) in cases().items():
        kind = Datatype(datatype)
        timings: dict[str, list[float]] = {label: [] for label in modules}
        for _ in range(options.rounds):
            for label, module in modules.items():
                decode = module.decode_values
                call = functools.partial(decode, "x", kind, shape, data)
                timings[label].append(_round(call, options.calls))
        cells = "".join(
            f"{statistics.median(t) * 1e6:16.2f}{min(t) * 1e6:14.2f}" for t in timings.values()
        )
        print(f"{name:32s}{cells}")


if __name__ == "__main__":
    main()
