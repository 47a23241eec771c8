"""Per-model environments: finding a model's environment file, packing, unpacking, and the
built-in runtimes a worker in an environment can import.

* ``files``: which file names describe an environment and which one wins;
* ``extract``: safe tarball extraction with limits (no reliance on tarfile's filter);
* ``unpack``: a packed tarball or a folder → a verified interpreter (``mlpack start``);
* ``pack``: requirements / conda files → a relocatable tarball (``mlpack env pack``);
* ``runtimes``: the one list of built-in runtime packages.

Building images from environments lives apart, in ``mlpack.packaging``.
"""

from __future__ import annotations

from .extract import DEFAULT_LIMITS, ExtractionLimits, extract_tarball
from .unpack import (
    MARKER,
    VENV_MANIFEST,
    Environment,
    InvalidEnvironment,
    check_python_version,
    file_digest,
    find_python,
    relocate_venv,
    resolve_environment,
    safe_extract,
    unpack_environment,
    verify_environment,
)

__all__ = [
    "DEFAULT_LIMITS",
    "MARKER",
    "VENV_MANIFEST",
    "Environment",
    "ExtractionLimits",
    "InvalidEnvironment",
    "check_python_version",
    "extract_tarball",
    "file_digest",
    "find_python",
    "relocate_venv",
    "resolve_environment",
    "safe_extract",
    "unpack_environment",
    "verify_environment",
]
