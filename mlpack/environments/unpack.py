"""Per-model environments: a packed tarball or an unpacked folder → a Python interpreter.

A model names its environment in ``parameters.environment_tarball`` (made by conda-pack
or ``mlpack env pack``) or ``parameters.environment_path`` (an unpacked environment).
Tarballs are unpacked once into ``environments_dir/<sha256 of the tarball>`` (or a folder
name the caller gives, as image builds do):

1. members are checked before anything is written, by mlpack's own extractor
   (``extract``: path resolution that takes the archive's symlinks into account, no
   links out, no devices or fifos, no setuid, limits on bytes, files, path length and
   compression ratio), with Python's ``data`` filter as a second line;
2. they are extracted into a private temporary folder, which is renamed into place;
3. relocation fix-ups run in the final location (conda-pack's ``bin/conda-unpack``, or
   the venv fix-up for tarballs made by ``mlpack env pack``);
4. a completion marker (``.mlpack-environment.json``: tarball hash, Python version and
   a size manifest) is written last. A folder without a valid marker, or whose files
   no longer match the manifest, is half-unpacked or corrupted: it is never used, and
   is unpacked afresh.

A restart finds the marker and reuses the folder. The environment's Python must have
the server's minor version (the server's mlpack code runs inside it); a mismatch fails
that model's load with a message saying both versions.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidEnvironment as InvalidEnvironment  # in the error tree; re-exported
from .extract import DEFAULT_LIMITS, ExtractionLimits, extract_tarball

logger = logging.getLogger("mlpack.environments")

MARKER = ".mlpack-environment.json"
# Written by ``mlpack env pack``: the tarball holds a venv without interpreter links.
VENV_MANIFEST = "mlpack-venv.json"
_MARKER_FORMAT = 1


@dataclass(frozen=True)
class Environment:
    """A usable environment: its folder and its interpreter."""

    root: Path
    python: Path


def resolve_environment(
    tarball: str | None,
    path: str | None,
    model_folder: Path | None,
    environments_dir: Path,
    limits: ExtractionLimits = DEFAULT_LIMITS,
) -> Environment | None:
    """The environment a model asks for (unpacking a tarball once), or None."""
    base = Path(model_folder) if model_folder else Path.cwd()
    if path:
        root = (base / path).resolve()
        if not root.is_dir():
            raise InvalidEnvironment(f"environment_path {root} is not a folder")
        environment = Environment(root, find_python(root))
    elif tarball:
        environment = unpack_environment(
            (base / tarball).resolve(), environments_dir, limits=limits
        )
    else:
        return None
    check_python_version(environment.python)
    return environment


def find_python(root: Path) -> Path:
    """The interpreter of the environment at ``root``."""
    for candidate in ("bin/python", "bin/python3", "python.exe"):
        python = root / candidate
        if python.exists():
            return python
    raise InvalidEnvironment(f"environment {root} has no bin/python")


def check_python_version(python: Path) -> None:
    """Fail unless ``python`` has this server's Python minor version."""
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        raise InvalidEnvironment(f"cannot run the environment's Python {python}: {error}") from None
    expected = "{}.{}".format(*sys.version_info[:2])
    if out != expected:
        raise InvalidEnvironment(
            f"environment Python {python} is {out}, but the server runs Python {expected}: "
            f"rebuild the environment with Python {expected}"
        )


def file_digest(path: Path) -> str:
    """sha256 of a file, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unpack_environment(
    tarball: Path,
    environments_dir: Path,
    name: str | None = None,
    limits: ExtractionLimits = DEFAULT_LIMITS,
) -> Environment:
    """Unpack ``tarball`` into ``environments_dir`` once (safely, atomically) and return it.

    The folder is ``name``, or else the first 32 hex digits of the tarball's sha256.
    """
    if not tarball.is_file():
        raise InvalidEnvironment(f"environment_tarball {tarball}: no such file")
    if name is not None and (not name or name in (".", "..") or "/" in name or "\\" in name):
        raise InvalidEnvironment(f"environment folder name {name!r} must be one path component")
    digest = file_digest(tarball)
    environments_dir.mkdir(parents=True, exist_ok=True)
    folder = name or digest[:32]
    target = environments_dir / folder
    with exclusive_lock(environments_dir / f".{folder}.lock"):
        problem = verify_environment(target, digest) if target.exists() else None
        if target.exists() and problem is None:
            logger.debug("reusing environment %s", target)
            return Environment(target, find_python(target))
        if problem is not None:
            logger.warning("environment %s is unusable (%s): unpacking it again", target, problem)
            shutil.rmtree(target)
        logger.info("unpacking environment %s into %s", tarball, target)
        staging = Path(tempfile.mkdtemp(prefix=f".tmp-{digest[:12]}-", dir=environments_dir))
        try:
            extract_tarball(tarball, staging, limits)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        try:
            _relocate(target)
            _write_marker(target, digest)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    return Environment(target, find_python(target))


def verify_environment(root: Path, digest: str) -> str | None:
    """Why the unpacked environment at ``root`` cannot be used, or None when it can."""
    try:
        marker = json.loads((root / MARKER).read_text())
    except FileNotFoundError:
        return "no completion marker: half-unpacked"
    except (OSError, ValueError) as error:
        return f"unreadable completion marker ({error})"
    if marker.get("sha256") != digest or marker.get("format") != _MARKER_FORMAT:
        return "completion marker is for another tarball"
    for relative, size in marker.get("files", {}).items():
        try:
            if (root / relative).lstat().st_size != size:
                return f"{relative} changed size"
        except OSError:
            return f"{relative} is missing"
    return None


def safe_extract(
    tarball: Path, destination: Path, limits: ExtractionLimits = DEFAULT_LIMITS
) -> None:
    """Extract ``tarball`` into the new, empty ``destination``, refusing anything unsafe."""
    extract_tarball(tarball, destination, limits)


def _relocate(root: Path) -> None:
    """Make an unpacked environment work in its new location."""
    if (root / VENV_MANIFEST).is_file():
        relocate_venv(root)
    conda_unpack = root / "bin" / "conda-unpack"
    if conda_unpack.is_file():
        result = subprocess.run(
            [str(find_python(root)), str(conda_unpack)], capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            raise InvalidEnvironment(
                f"conda-unpack failed in {root}: {result.stderr.strip() or result.stdout.strip()}"
            )


def relocate_venv(root: Path) -> None:
    """Recreate a packed venv's interpreter links and scripts for this machine and place."""
    manifest = json.loads((root / VENV_MANIFEST).read_text())
    packed_for = manifest.get("python", "")
    here = "{}.{}".format(*sys.version_info[:2])
    if packed_for != here:
        raise InvalidEnvironment(
            f"environment was packed for Python {packed_for}, but the server runs Python {here}"
        )
    import venv

    # Writes pyvenv.cfg and bin/python* for this interpreter; keeps lib/ untouched.
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt", clear=False).create(str(root))
    old_prefix = manifest.get("prefix", "")
    if old_prefix:
        _rewrite_shebangs(root / "bin", old_prefix, str(root))


def _rewrite_shebangs(bin_dir: Path, old_prefix: str, new_prefix: str) -> None:
    old = f"#!{old_prefix}/bin/".encode()
    new = f"#!{new_prefix}/bin/".encode()
    for script in bin_dir.iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        with open(script, "rb") as stream:
            head = stream.read(len(old))
        if head == old:
            script.write_bytes(new + script.read_bytes()[len(old) :])


def _write_marker(root: Path, digest: str) -> None:
    files = {
        str(path.relative_to(root)): path.lstat().st_size
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink() and "__pycache__" not in path.parts
    }
    marker = {"format": _MARKER_FORMAT, "sha256": digest, "files": files}
    temporary = root / f"{MARKER}.tmp"
    temporary.write_text(json.dumps(marker))
    os.replace(temporary, root / MARKER)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (two servers making the same environment)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
