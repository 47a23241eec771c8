"""Time building a model environment from a requirements file: uv vs pip, side by side.

    python benchmarks/env_build.py [REQUIREMENTS...] [--rounds N]

Each round builds a fresh venv with each installer (``mlpack.environments.build.create_venv``,
as ``mlpack start`` does); the first round warms both installers' download caches, so the
medians compare installing, not downloading. Prints seconds per installer and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from mlpack.environments.build import Installer, create_venv


def measure(requirements: Path, installer: Installer) -> float:
    with tempfile.TemporaryDirectory(prefix="mlpack-bench-env-") as scratch:
        started = time.perf_counter()
        create_venv(Path(scratch) / "env", requirements, installer, quiet=True)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("packages", nargs="*", default=["tabulate==0.9.0", "scikit-learn"])
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text("\n".join(options.packages) + "\n")
        installers: tuple[Installer, ...] = ("pip", "uv")
        for installer in installers:
            measure(requirements, installer)  # warm the download cache
        times: dict[str, list[float]] = {name: [] for name in installers}
        for _ in range(options.rounds):
            for installer in installers:
                times[installer].append(measure(requirements, installer))
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"requirements: {', '.join(options.packages)}; {options.rounds} rounds, warm caches")
    for name, values in times.items():
        print(
            f"  {name:4s} median {medians[name]:6.2f}s  ({', '.join(f'{v:.2f}' for v in values)})"
        )
    print(f"  uv is {medians['pip'] / medians['uv']:.1f}x faster than pip")


if __name__ == "__main__":
    main()
