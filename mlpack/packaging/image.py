"""Build an image with the Docker engine from a context prepared on the host.

The context sent to the engine::

    Dockerfile, .dockerignore
    .mlpack-build/server/mlpack/   mlpack's own wheel (``pip wheel`` of this source)
    .mlpack-build/server/deps/     wheels of mlpack's dependencies + the root requirements.txt
    .mlpack-build/envs/<key>/      per-model requirements.txt + wheels/, or environment.tar.gz
    models/                        the served folder (.dockerignore applied), with each model's
                                   ``environment_path`` pointing at its environment in the image

Everything is made on the host, so the engine needs no network.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..distribution import DISTRIBUTION
from ..environments.pack import BuildError, pack_conda
from ..environments.requirements import cpu_variants
from ..settings import MODEL_SETTINGS_FILENAME, read_settings_file
from .dockerfile import render_dockerfile, render_dockerignore
from .plan import ImagePlan
from .references import base_images, check_tag
from .wheels import cache_dir, link_or_copy, wheels_for

Echo = Callable[[str], None]
_SOURCE_PARTS = ("mlpack", "runtimes", "templates", "pyproject.toml", "README.md")
# Zip timestamps in wheels made here: a rebuild of unchanged code gives identical bytes.
_SOURCE_DATE_EPOCH = "315532800"


@dataclass
class BuildResult:
    """What a finished build reports."""

    image_id: str
    size: int
    seconds: float
    log: list[str] = field(default_factory=list)
    dockerfile: str = ""  # the Dockerfile the engine built


def mlpack_source() -> Path:
    """The source tree of the running mlpack (a wheel of it goes into the image)."""
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or f'name = "{DISTRIBUTION}"' not in pyproject.read_text():
        raise BuildError(
            f"mlpack's source tree was not found next to {Path(__file__).resolve().parents[1]}: "
            "`mlpack build` packs mlpack from its source; install mlpack from a checkout "
            "(pip install -e .) to build images"
        )
    return root


def mlpack_wheel(destination: Path) -> Path:
    """A wheel of this mlpack source (cached by content), copied into ``destination``."""
    source = mlpack_source()
    digest = hashlib.sha256()
    files = _source_files(source)
    for path in files:
        digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes() + b"\0")
    cached = cache_dir() / "mlpack-wheels" / digest.hexdigest()[:20]
    if not list(cached.glob("*.whl")):
        with tempfile.TemporaryDirectory(prefix="mlpack-wheel-") as scratch:
            copy = Path(scratch) / "src"
            for path in files:
                target = copy / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            (copy / "mlpack" / "_templates").unlink(missing_ok=True)
            (copy / "mlpack" / "_templates").symlink_to("../templates")
            out = Path(scratch) / "out"
            environment = {**os.environ, "SOURCE_DATE_EPOCH": _SOURCE_DATE_EPOCH}
            command = [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--wheel-dir",
                str(out),
                str(copy),
            ]
            # With this Python's setuptools first (fast, offline); where it cannot build
            # wheels (an old setuptools without the wheel package), in an isolated build.
            result = subprocess.run(
                [*command, "--no-build-isolation"], capture_output=True, text=True, env=environment
            )
            if result.returncode != 0:
                result = subprocess.run(command, capture_output=True, text=True, env=environment)
            if result.returncode != 0:
                raise BuildError(f"building mlpack's wheel failed:\n{result.stderr[-2000:]}")
            cached.mkdir(parents=True, exist_ok=True)
            for wheel in out.glob("*.whl"):
                shutil.copy2(wheel, cached / wheel.name)
    destination.mkdir(parents=True, exist_ok=True)
    (wheel,) = cached.glob("*.whl")
    shutil.copy2(wheel, destination / wheel.name)
    return destination / wheel.name


def _source_files(source: Path) -> list[Path]:
    files: list[Path] = []
    for part in _SOURCE_PARTS:
        path = source / part
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not p.is_symlink()
                and "__pycache__" not in p.parts
                and not p.name.endswith((".pyc", ".egg-info"))
                and ".egg-info" not in str(p)
                and "/tests/" not in str(p.relative_to(source))
            )
    return sorted(files)


def server_dependency_wheels(
    wheel: Path, root_requirements: Path | None, destination: Path
) -> None:
    """Wheels for mlpack's dependencies and the image-wide requirements, resolved together."""
    with tempfile.TemporaryDirectory(prefix="mlpack-deps-") as scratch:
        requirements = Path(scratch) / "requirements.txt"
        lines = [_requires_dist(wheel)]
        if root_requirements is not None:
            lines.append(root_requirements.read_text())
        requirements.write_text("\n".join(lines))
        wheels_for(requirements, destination)


def _requires_dist(wheel: Path) -> str:
    """mlpack's runtime requirements, read from its wheel's metadata (no extras)."""
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        metadata_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(metadata_name).decode()
    return "\n".join(
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    )


def stage(plan: ImagePlan, staging: Path, echo: Echo) -> None:
    """Make wheels and environments on the host, under ``staging`` (.mlpack-build/).

    Only files are made: the plan (and so the Dockerfile) is already final.
    """
    started = time.perf_counter()
    echo("preparing mlpack wheel")
    wheel = mlpack_wheel(staging / "server" / "mlpack")
    echo(
        "preparing server dependency wheels"
        + (" (+ requirements.txt)" if plan.root_requirements else "")
    )
    server_dependency_wheels(wheel, plan.root_requirements, staging / "server" / "deps")
    for env in plan.environments:
        target = staging / "envs" / env.key
        target.mkdir(parents=True, exist_ok=True)
        echo(f"preparing environment '{env.key}' from {env.source.name} ({', '.join(env.models)})")
        if env.kind == "requirements":
            # As the wheels were made: CPU-only twins swapped in.
            (target / "requirements.txt").write_text(cpu_variants(env.source.read_text()))
            wheels_for(env.source, target / "wheels")
        elif env.kind == "conda":
            pack_conda(env.source, target / "environment.tar.gz")
        else:
            (target / "environment.tar.gz").unlink(missing_ok=True)
            link_or_copy(env.source, target / "environment.tar.gz")
    echo(f"context prepared in {time.perf_counter() - started:.1f}s")


def write_context(
    plan: ImagePlan, staging: Path, dockerfile: str, stream: io.BufferedIOBase
) -> None:
    """Write the build context as an uncompressed tar to ``stream``."""
    from docker.utils.build import exclude_paths

    user_ignore = plan.folder / ".dockerignore"
    ignore_text = user_ignore.read_text() if user_ignore.is_file() else render_dockerignore(plan)
    patterns = [
        line.strip()
        for line in ignore_text.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    staged_tarballs = {env.source.resolve() for env in plan.environments if env.kind == "tarball"}
    settings_overrides = _environment_paths(plan)

    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        _add_bytes(archive, "Dockerfile", dockerfile.encode())
        _add_bytes(archive, ".dockerignore", ignore_text.encode())
        for path in sorted(staging.rglob("*")):
            archive.add(
                path,
                arcname=f".mlpack-build/{path.relative_to(staging)}",
                recursive=False,
                filter=_normalise,
            )
        included = sorted(exclude_paths(str(plan.folder), patterns))
        for relative in included:
            path = plan.folder / relative
            if relative in ("Dockerfile", ".dockerignore") or relative.startswith(".mlpack-build"):
                continue
            if path.is_file() and path.resolve() in staged_tarballs:
                continue
            if relative in settings_overrides:
                _add_bytes(archive, f"models/{relative}", settings_overrides[relative], mode=0o644)
                continue
            archive.add(path, arcname=f"models/{relative}", recursive=False, filter=_normalise)


def _environment_paths(plan: ImagePlan) -> dict[str, bytes]:
    """model-settings.json files rewritten to point at their environment inside the image."""
    rewritten: dict[str, bytes] = {}
    for model in plan.models:
        if model.environment is None:
            continue
        relative = (
            MODEL_SETTINGS_FILENAME
            if model.folder == "."
            else f"{model.folder}/{MODEL_SETTINGS_FILENAME}"
        )
        values = read_settings_file(plan.folder / relative)
        parameters = values.setdefault("parameters", {})
        parameters.pop("environment_tarball", None)
        parameters["environment_path"] = model.environment.prefix
        rewritten[relative] = (json.dumps(values, indent=2) + "\n").encode()
    return rewritten


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Owner and times do not matter in the image (COPY --chown), and vary between hosts.
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = int(_SOURCE_DATE_EPOCH)
    return info


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(_SOURCE_DATE_EPOCH)
    archive.addfile(info, io.BytesIO(data))


def docker_client() -> Any:
    """A client for the local Docker engine, or a ``BuildError`` saying none is reachable."""
    try:
        import docker
        from docker.errors import DockerException
        from requests.exceptions import RequestException
    except ImportError:
        raise BuildError(
            "`mlpack build` needs the Docker SDK, a build-only extra: "
            "pip install 'mlpack-serve[build]'"
        ) from None
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")

    def unreachable(error: object) -> BuildError:
        return BuildError(
            f"no Docker engine reachable at {where} ({error}); start Docker (dockerd) or set "
            "DOCKER_HOST. "
            "`mlpack dockerfile` writes the Dockerfile without an engine."
        )

    if where.startswith("unix://"):
        # Probe the socket first: the SDK leaks a socket when the engine is missing.
        import socket

        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(where[len("unix://") :])
            except OSError as error:
                raise unreachable(error) from None
    client = None
    try:
        # A fixed API version (Docker 20.10+; newer engines accept it): no version probe, so a
        # missing engine fails in ping() with a client that can still be closed.
        client = docker.from_env(timeout=600, version=os.environ.get("DOCKER_API_VERSION", "1.41"))
        client.ping()
    except (DockerException, RequestException, OSError) as error:
        if client is not None:
            client.close()
        raise unreachable(error) from None
    return client


def check_base_images(client: Any, images: list[str], echo: Echo) -> None:
    """Raise ``BuildError`` unless every image is in the engine or its registry answers."""
    from docker.errors import DockerException, ImageNotFound
    from requests.exceptions import RequestException

    for image in images:
        try:
            client.images.get(image)
            continue
        except ImageNotFound:
            pass
        except (DockerException, RequestException) as error:
            raise BuildError(f"cannot inspect base image {image}: {error}") from None
        try:
            client.images.get_registry_data(image)
        except (DockerException, RequestException, OSError) as error:
            raise BuildError(
                f"base image {image} is not in the local Docker engine and cannot be pulled "
                f"({_first_line(error)}): pull or load it first (docker pull {image}), or pass "
                "--base-image with an image the engine has (Python 3.11 with venv)"
            ) from None
        echo(f"base image {image} is not local: the engine will pull it")


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def build_image(
    plan: ImagePlan,
    tag: str,
    echo: Echo,
    no_cache: bool = False,
    build_args: dict[str, str] | None = None,
    dockerfile: str | None = None,
) -> BuildResult:
    """Check the tag and base images, prepare the context, build it with the engine
    (streaming its output) and report the image: what can fail early fails first."""
    check_tag(tag)
    client = docker_client()
    try:
        text = _build_dockerfile(plan, dockerfile)
        check_base_images(client, base_images(text, plan.base_image, build_args), echo)
        return _build(client, plan, tag, echo, no_cache, build_args, dockerfile)
    finally:
        client.close()


def _build(
    client: Any,
    plan: ImagePlan,
    tag: str,
    echo: Echo,
    no_cache: bool,
    build_args: dict[str, str] | None,
    dockerfile: str | None,
) -> BuildResult:
    from docker.errors import APIError, DockerException
    from requests.exceptions import RequestException
    from urllib3.exceptions import ProtocolError

    started = time.perf_counter()
    log: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlpack-build-") as scratch:
        staging = Path(scratch) / "stage"
        stage(plan, staging, echo)
        text = _build_dockerfile(plan, dockerfile)
        context_path = Path(scratch) / "context.tar"
        with open(context_path, "wb") as stream:
            write_context(plan, staging, text, stream)
        echo(f"sending context ({context_path.stat().st_size / 1e6:.1f} MB) to the Docker engine")
        try:
            with open(context_path, "rb") as context:
                for chunk in client.api.build(
                    fileobj=context,
                    custom_context=True,
                    tag=tag,
                    nocache=no_cache,
                    rm=True,
                    forcerm=True,
                    pull=False,
                    buildargs=build_args or {},
                    decode=True,
                ):
                    if "error" in chunk or "errorDetail" in chunk:
                        message = chunk.get("error") or chunk["errorDetail"].get("message", "")
                        raise BuildError(
                            f"the Docker engine failed to build {tag}: {message.strip()}"
                        )
                    line = chunk.get("stream", "")
                    for piece in _lines(line):
                        log.append(piece)
                        echo(piece)
            image = client.images.get(tag)
        except (APIError, DockerException) as error:
            raise BuildError(f"the Docker engine failed to build {tag}: {error}") from None
        except (OSError, RequestException, ProtocolError) as error:
            raise BuildError(
                f"lost the connection to the Docker engine while building {tag}: {error}"
            ) from None
    seconds = time.perf_counter() - started
    return BuildResult(image.id, int(image.attrs.get("Size", 0)), seconds, log, text)


def _build_dockerfile(plan: ImagePlan, custom: str | None) -> str:
    """The Dockerfile a build sends: the user's, or the one `mlpack dockerfile` writes."""
    return custom if custom is not None else render_dockerfile(plan)


def _lines(text: str) -> Iterable[str]:
    return (line for line in text.rstrip("\n").split("\n") if line.strip())
