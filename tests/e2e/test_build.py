"""`mlpack build` with a real Docker engine: two models, two environments, one image.

Needs a Docker engine and a local base image with Python 3.11 + venv
(``MLPACK_TEST_BASE_IMAGE``, default ``mlpack-base:bookworm-py311``, made by
``.ci/docker-setup.sh``). Without them these tests skip, unless
``MLPACK_REQUIRE_DOCKER=1`` (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_ports
from tests.helpers.server import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.timeout(900)]

BASE_IMAGE = os.environ.get("MLPACK_TEST_BASE_IMAGE", "mlpack-base:bookworm-py311")
EXAMPLE = REPO / "examples" / "multi-env"
RUN_LABEL = "io.mlpack.test-run"


def _docker(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


@pytest.fixture(scope="module")
def docker_ready() -> None:
    """Skip (or, with MLPACK_REQUIRE_DOCKER=1, fail) without an engine and the base image."""
    required = os.environ.get("MLPACK_REQUIRE_DOCKER") == "1"
    problem = None
    if shutil.which("docker") is None:
        problem = "no docker CLI on PATH"
    elif _docker("info", check=False).returncode != 0:
        problem = "no Docker engine reachable (start dockerd, e.g. bash .ci/docker-setup.sh)"
    elif _docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        problem = f"base image {BASE_IMAGE} missing (bash .ci/docker-setup.sh makes it)"
    if problem:
        if required:
            pytest.fail(f"MLPACK_REQUIRE_DOCKER=1 but {problem}")
        pytest.skip(problem)


def _mlpack(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "runtimes" / "sklearn")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "mlpack", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )


def _scoped_dockerfile(folder: Path, run: str, log_dir: Path) -> Path:
    """``mlpack dockerfile``'s output with this test run's label after each ``FROM``.

    The Docker engine is shared (other test runs, other worktrees): the label gives this run
    its own layer cache (a LABEL changes the cache key of every later step), and lets the
    teardown prune only what this run made.
    """
    result = _mlpack("dockerfile", str(folder), "--base-image", BASE_IMAGE, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = folder / "Dockerfile"
    lines = []
    for line in rendered.read_text().splitlines():
        lines.append(line)
        if line.startswith("FROM "):
            lines.append(f'LABEL {RUN_LABEL}="{run}"')
    rendered.unlink()  # not part of the build context
    scoped = log_dir / f"Dockerfile-{run}"
    scoped.write_text("\n".join(lines) + "\n")
    return scoped


def _build(
    folder: Path, tag: str, log_dir: Path, run: str, in_folder: bool = False
) -> tuple[float, str]:
    """Build with this run's Dockerfile, given by --dockerfile or (``in_folder``) left in
    the folder, where `mlpack build` finds and uses it."""
    dockerfile = _scoped_dockerfile(folder, run, log_dir)
    where = ["--dockerfile", str(dockerfile)]
    if in_folder:
        shutil.copy(dockerfile, folder / "Dockerfile")
        where = []
    started = time.perf_counter()
    result = _mlpack("build", str(folder), "-t", tag, "--base-image", BASE_IMAGE, *where)
    if in_folder:
        (folder / "Dockerfile").unlink()
    seconds = time.perf_counter() - started
    (log_dir / f"build-{tag.replace(':', '-')}.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return seconds, result.stdout


@pytest.fixture(scope="module")
def built(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The example built once (cold, as far as this tag goes) and rebuilt after a code change."""
    work = tmp_path_factory.mktemp("build")
    folder = work / "multi-env"
    shutil.copytree(EXAMPLE, folder)
    suffix = uuid.uuid4().hex[:8]
    first_tag, second_tag = f"mlpack-test-multienv:{suffix}-a", f"mlpack-test-multienv:{suffix}-b"
    stage_tag = f"mlpack-test-envstage:{suffix}"
    info: dict[str, Any] = {"folder": folder, "tag": first_tag, "tags": [first_tag, stage_tag]}
    try:
        info["first_seconds"], info["first_log"] = _build(folder, first_tag, work, suffix)
        # The environments stage is an untagged image, which any `docker image prune` on the
        # shared engine may remove (and with it the cache the rebuild must reuse): tag it.
        stage = _docker(
            "images", "-q", "--filter", f"label={RUN_LABEL}={suffix}",
            "--filter", "label=io.mlpack.stage=environments",
        ).stdout.split()  # fmt: skip
        assert len(stage) == 1, stage
        _docker("tag", stage[0], stage_tag)
        models = folder / "table_old" / "models.py"
        models.write_text(models.read_text() + "\n# a code-only change\n")
        info["tags"].append(second_tag)
        info["second_seconds"], info["second_log"] = _build(
            folder, second_tag, work, suffix, in_folder=True
        )
        info["second_tag"] = second_tag
        print(
            f"\ncold build {info['first_seconds']:.1f}s,"
            f" code-only rebuild {info['second_seconds']:.1f}s"
        )
        yield info
    finally:
        for tag in info["tags"]:
            _docker("image", "rm", "-f", tag, check=False)
        # What is left of this run only (never another run's images or cache).
        _docker("image", "prune", "-f", "--filter", f"label={RUN_LABEL}={suffix}", check=False)


def _run(tag: str, *args: str) -> tuple[str, int]:
    (port,) = free_ports(1)
    name = f"mlpack-test-{uuid.uuid4().hex[:8]}"
    _docker("run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:8080", *args, tag)
    return name, port


def _wait_ready(name: str, port: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    logs = _docker("logs", name, check=False)
    raise TimeoutError(f"container {name} not ready:\n{logs.stdout}{logs.stderr}")


def _infer(port: int, model: str) -> dict[str, Any]:
    body = {"inputs": [{"name": "x", "shape": [2], "datatype": "INT64", "data": [1, 2]}]}
    response = httpx.post(f"http://127.0.0.1:{port}/v2/models/{model}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return {output["name"]: output["data"][0] for output in response.json()["outputs"]}


@pytest.mark.parametrize("user", [None, "12345:0"], ids=["image-user", "arbitrary-uid"])
def test_each_model_uses_its_own_environment(built: dict[str, Any], user: str | None) -> None:
    name, port = _run(built["tag"], *(["--user", user] if user else []))
    try:
        _wait_ready(name, port)
        old, new = _infer(port, "table-old"), _infer(port, "table-new")
        assert old["tabulate_version"] == "0.8.10"
        assert new["tabulate_version"] == "0.9.0"
        assert old["python"] == "/opt/mlpack/envs/table_old/bin/python"
        assert new["python"] == "/opt/mlpack/envs/table_new/bin/python"
        assert "  1\n  2" in old["table"]
        if user:
            uid = _docker("exec", name, "id", "-u").stdout.strip()
            assert uid == "12345"
    finally:
        _docker("stop", "-t", "10", name, check=False)


def test_image_metadata(built: dict[str, Any]) -> None:
    (image,) = json.loads(_docker("image", "inspect", built["tag"]).stdout)
    config = image["Config"]
    assert config["User"] == "1000"
    assert set(config["ExposedPorts"]) == {"8080/tcp", "8081/tcp", "8082/tcp"}
    assert "/v2/health/ready" in " ".join(config["Healthcheck"]["Test"])
    assert config["Labels"]["io.mlpack.models"] == "table-new,table-old"
    assert config["Labels"]["io.mlpack.version"]
    print(f"\nimage size {image['Size'] / 1e6:.0f} MB")


def test_dockerfile_in_the_folder_is_used_and_said(built: dict[str, Any]) -> None:
    """The rebuild's Dockerfile sat in the folder (no --dockerfile): used, and said so.
    Before, a Dockerfile there was ignored and a fresh one rendered."""
    assert f"using {built['folder'] / 'Dockerfile'} (found in the folder" in built["second_log"]
    (image,) = json.loads(_docker("image", "inspect", built["second_tag"]).stdout)
    assert image["Config"]["Labels"][RUN_LABEL]  # only the test's Dockerfile sets it


def test_missing_base_image_fails_before_any_work(docker_ready: None, tmp_path: Path) -> None:
    """Before: wheels, context upload, then Docker's raw DNS error from the engine."""
    folder = tmp_path / "multi-env"
    shutil.copytree(EXAMPLE, folder)
    missing = f"mlpack-test-no-such-base:{uuid.uuid4().hex[:8]}"
    environment = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    command = ["build", str(folder), "-t", "mlpack-test-x:1", "--base-image", missing]
    result = subprocess.run(
        [sys.executable, "-m", "mlpack", *command],
        capture_output=True,
        text=True,
        timeout=300,
        env={**environment, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"base image {missing} is not in the local Docker engine" in result.stderr
    assert "--base-image" in result.stderr and "Traceback" not in result.stderr
    assert "preparing" not in result.stdout and not (tmp_path / "cache").exists()


def test_single_model_folder_environment_is_built_in(docker_ready: None, tmp_path: Path) -> None:
    """The folder `mlpack init` makes, with its environment packed as environment.tar.gz.
    Before: the build ignored it, exited 0, and the image answered 503 No module named..."""
    folder = tmp_path / "single"
    shutil.copytree(EXAMPLE / "table_old", folder)
    packed = _mlpack("env", "pack", str(folder), timeout=600)
    assert packed.returncode == 0, packed.stderr
    (folder / "requirements.txt").unlink()
    run = uuid.uuid4().hex[:8]
    tag = f"mlpack-test-single:{run}"
    try:
        _build(folder, tag, tmp_path, run)
        name, port = _run(tag)
        try:
            _wait_ready(name, port)
            outputs = _infer(port, "table-old")
        finally:
            _docker("stop", "-t", "10", name, check=False)
        assert outputs["tabulate_version"] == "0.8.10"
        assert outputs["python"] == "/opt/mlpack/envs/root/bin/python"
    finally:
        _docker("image", "rm", "-f", tag, check=False)
        _docker("image", "prune", "-f", "--filter", f"label={RUN_LABEL}={run}", check=False)


def test_image_carries_no_build_only_packages(built: dict[str, Any]) -> None:
    """conda-pack, the Docker SDK and uv are for building, not serving: not in the image."""
    probe = (
        "import importlib.util as u, json; "
        "print(json.dumps([m for m in ('docker', 'conda_pack', 'uv') if u.find_spec(m)]))"
    )
    result = _docker(
        "run", "--rm", "--entrypoint", "/opt/mlpack/venv/bin/python", built["tag"], "-c", probe
    )
    assert json.loads(result.stdout) == []
    assert _docker("run", "--rm", "--entrypoint", "/opt/mlpack/venv/bin/mlpack", built["tag"],
                   "--help").returncode == 0  # fmt: skip


def test_code_change_reuses_environment_layers(built: dict[str, Any]) -> None:
    log = built["second_log"]
    steps = log.split("Step ")[1:]
    code_step = next(
        i for i, step in enumerate(steps) if " models /opt/mlpack/models" in step.split("\n", 1)[0]
    )
    cacheable = [
        s
        for s in steps[:code_step]
        if s.split("\n", 1)[0].split(" : ", 1)[-1].startswith(("RUN", "COPY"))
    ]
    assert len(cacheable) >= 9  # server deps, two environments, mlpack, user setup, copies
    for step in cacheable:
        assert "Using cache" in step, f"layer rebuilt after a code-only change:\n{step}"
    first, second = (
        json.loads(_docker("image", "inspect", tag).stdout)[0]["RootFS"]["Layers"]
        for tag in (built["tag"], built["second_tag"])
    )
    # Only the model-code layer differs.
    assert first[:-1] == second[:-1] and first[-1] != second[-1]


def test_build_uses_the_rendered_dockerfile_for_a_packed_environment(
    docker_ready: None, tmp_path: Path
) -> None:
    """A packed environment (as conda ones arrive) is unpacked where the image copies it
    from, and the Dockerfile built is the one `mlpack dockerfile` writes."""
    from typer.testing import CliRunner

    from mlpack.cli import create_app
    from mlpack.packaging.image import build_image
    from mlpack.packaging.plan import plan_image

    folder = tmp_path / "packed"
    shutil.copytree(EXAMPLE, folder)
    old = folder / "table_old"
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    packed = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlpack",
            "env",
            "pack",
            str(old),
            "-o",
            str(old / "environment.tar.gz"),
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )
    assert packed.returncode == 0, packed.stderr
    (old / "requirements.txt").unlink()
    result = CliRunner().invoke(
        create_app(), ["dockerfile", str(folder), "--base-image", BASE_IMAGE]
    )
    assert result.exit_code == 0, result.output
    rendered = (folder / "Dockerfile").read_text()
    (folder / "Dockerfile").unlink()
    plan = plan_image(folder, BASE_IMAGE)
    assert [e.kind for e in plan.environments] == ["requirements", "tarball"]
    run = uuid.uuid4().hex[:8]
    tag = f"mlpack-test-packed:{run}"
    # This run's label after each FROM (its own cache; the teardown prunes only this run's).
    scoped = "".join(
        line + (f'LABEL {RUN_LABEL}="{run}"\n' if line.startswith("FROM ") else "")
        for line in rendered.splitlines(keepends=True)
    )
    log: list[str] = []
    try:
        built = build_image(plan, tag, log.append, dockerfile=scoped)
        assert built.dockerfile == scoped
        assert (
            "".join(
                line
                for line in scoped.splitlines(keepends=True)
                if not line.startswith("LABEL io.mlpack.test-run")
            )
            == rendered
        )
        name, port = _run(tag)
        try:
            _wait_ready(name, port)
            outputs = _infer(port, "table-old")
            assert outputs["tabulate_version"] == "0.8.10"
            assert outputs["python"] == "/opt/mlpack/envs/table_old/bin/python"
        finally:
            _docker("stop", "-t", "10", name, check=False)
    finally:
        (tmp_path / "build.log").write_text("\n".join(log))
        _docker("image", "rm", "-f", tag, check=False)
        _docker("image", "prune", "-f", "--filter", f"label={RUN_LABEL}={run}", check=False)
