"""Create (or reuse) the MLServer virtualenv used as the benchmark baseline.

Usage: ``python -m benchmarks.mlserver_env`` prints the path of the ``mlserver`` executable.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import venv
from pathlib import Path

VENV_DIR = Path(__file__).resolve().parent / ".venv-mlserver"
# uvloop newer than 0.21 crashes MLServer 1.7.1's worker processes at start.
REQUIREMENTS = ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0")
_MARKER = ".mlpack-bench-installed"


def _marker_text(requirements: tuple[str, ...] = REQUIREMENTS) -> str:
    return "\n".join(requirements) + "\n"


def ensure_mlserver(
    venv_dir: Path = VENV_DIR, quiet: bool = True, requirements: tuple[str, ...] = REQUIREMENTS
) -> Path:
    """The path of ``mlserver`` in ``venv_dir``, installing ``requirements`` first if needed."""
    exe = venv_dir / "bin" / "mlserver"
    marker = venv_dir / _MARKER
    if exe.exists() and marker.exists() and marker.read_text() == _marker_text(requirements):
        return exe
    if not (venv_dir / "bin" / "python").exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    pip = [str(venv_dir / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    if quiet:
        pip.append("-q")
    subprocess.run([*pip, *requirements], check=True)
    if not exe.exists():
        raise RuntimeError(f"pip install finished but {exe} does not exist")
    marker.write_text(_marker_text(requirements))
    return exe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=VENV_DIR, help="virtualenv folder")
    parser.add_argument("-v", "--verbose", action="store_true", help="show pip output")
    args = parser.parse_args(argv)
    print(ensure_mlserver(args.venv, quiet=not args.verbose))
    return 0


if __name__ == "__main__":
    sys.exit(main())
